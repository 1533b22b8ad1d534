"""The agent worker: consumes MCP tools/call tasks, runs them, reports, acks."""
