"""Helpers shared by tests and bench scripts (tiny checkpoints built on the fly)."""
