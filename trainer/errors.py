"""The one error the trainer raises for things a user can fix (bad data, a missing file...)."""

from __future__ import annotations


class TrainError(Exception):
    """A problem with the inputs or the environment, with a message that says what to do."""
