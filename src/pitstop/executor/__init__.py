"""Durable execution of a plan: write-ahead journal, steps with pre/post conditions, gates,
automatic rollback, pause/resume/abort, approvals and maintenance windows."""
