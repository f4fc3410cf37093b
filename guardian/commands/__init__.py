"""One module per CLI command (``<name>_cmd.py``): argument parsing and output only."""
