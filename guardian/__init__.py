"""guardian: keeps a chromem-go vector store loadable, snapshotted and searchable."""

__version__ = "0.1.0"
