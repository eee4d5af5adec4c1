"""The rehearsal twin: a deterministic discrete-event simulation of a fleet in virtual time,
implementing the backend interface."""
