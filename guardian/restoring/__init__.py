"""Restore as one pipeline: a *source* chooses a snapshot, a pure *plan* says what changes, a
*destination* carries the plan out, an *executor* says in which process.

    source       LocalSource (this store's repository) | ReplicaSource (fetched first)
    selection    the whole store | one collection | chosen memories (``RestoreRequest``)
    plan         pure: ``snapshots.restore_plan.plan_restore`` / ``restoring.memories.plan_memories``
    destination  StoreInPlace (the store, everything replaced goes to quarantine) | TargetFolder
    executor     InProcess (this process, under the store lock) | ThroughSidecar (the sidecar that
                 guards the store runs the same pipeline, its child stopped around it)

`guardian restore` only chooses the four parts from its flags and presents the ``RestoreOutcome``;
a page served by the sidecar calls the same ``Restore``. A new mode is one more part, never another
branch in the command.
"""
