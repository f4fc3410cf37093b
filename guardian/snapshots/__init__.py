"""Snapshots of a chromem store: a content-addressed repository in guardian's state dir.

Modules: ``timespec`` (parse ``--at``), ``retention`` (which snapshots to keep), ``manifest``
(the snapshot record and its validation), ``repository`` (blobs and manifests on disk),
``take`` (take a snapshot), ``restore_plan`` / ``restore`` (plan, then execute a restore),
``verify`` (check the repository), ``schedule`` (hourly snapshots), ``progress``.
"""
