"""MCP stand-in for contextd: relay, fallback server, contextd tool schemas and answers."""
