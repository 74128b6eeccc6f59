"""The promotion gate: pure statistics and the decision rule (no I/O)."""
