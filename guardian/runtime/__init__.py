"""The long-running side of guardian: the sidecar and its parts (pre-flight, snapshots, index,
watcher, HTTP, control socket, heartbeat, supervisor), status, alerts, sd_notify, service files."""
