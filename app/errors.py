"""Errors that mean "the user asked for something that cannot work", with a message to show.

The command line prints these without a traceback and the desktop app shows them in a dialog;
anything else escaping the engine is a bug and is reported with its traceback.
"""


class UserError(ValueError):
    """A mistake in the user's input (paths, settings, files); `str(error)` says what to fix."""


class CheckpointError(UserError):
    """A checkpoint that is missing, unreadable, or does not fit the model/data it is used with."""
