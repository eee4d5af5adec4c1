"""The audit log: append-only, hash-chained JSON lines of every decision and action."""
