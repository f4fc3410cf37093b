"""What guardian keeps on this machine, outside the store: state paths, locks, the collection
catalog, quarantine, and the durable file operations every write goes through."""
