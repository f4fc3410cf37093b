"""Off-machine replicas of the snapshot repository (S3-compatible buckets, folders on other disks).

The local repository's files are copied as opaque, immutable objects (``Repository.data_files_for``),
encrypted on the way out for remote targets; a snapshot's *record* is written last and is the
commit point on the replica, exactly as the manifest is locally.
"""
