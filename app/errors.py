"""Errors that mean "the user asked for something that cannot work", with a message to show.

The command line prints these without a traceback and the desktop app shows them in a dialog;
anything else escaping the engine is a bug and is reported with its traceback.
"""


class UserError(ValueError):
    """A mistake in the user's input (paths, settings, files); `str(error)` says what to fix."""


class CheckpointError(UserError):
    """A checkpoint that is missing, unreadable, or does not fit the model/data it is used with."""


def user_error_types() -> tuple:
    """Every exception type that means "fix your input", from all core packages.

    The engine shows these as one message; anything else is a bug and keeps its traceback.
    """
    from datasets import DatasetError
    from models import DeviceError, UnknownModelError, WeightsError

    return (UserError, DatasetError, DeviceError, UnknownModelError, WeightsError)
