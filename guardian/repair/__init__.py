"""Pre-flight repair: make a store chromem would refuse loadable again, keeping every byte.

``names`` (candidate collection names, pure), ``plan`` (pure planning), ``sources`` (what the
snapshots and the damaged files offer), ``apply`` (executes a plan under the store lock),
``preflight`` (scan, plan, apply, re-scan; the API used by ``guardian check --repair``, ``run``, ``exec``).
"""
