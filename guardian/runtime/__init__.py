"""The long-running side of guardian: the runtime assembled from parts (``assembly.py`` lists them,
``parts/`` holds them, ``context.py`` is what they share), plus the store watcher, control socket,
status, alerts, sd_notify, service files and the supervisor."""
