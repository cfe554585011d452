"""Errors that mean "the user asked for something that cannot work", with a message to show.

The command line prints these without a traceback and the desktop app shows them in a dialog;
anything else escaping the engine is a bug and is reported with its traceback.
"""

from typing import Optional

# What torch says when an allocation fails: the CPU allocator (a RuntimeError, not a
# MemoryError), CUDA and MPS (OutOfMemoryError, also a RuntimeError).
_OUT_OF_MEMORY_WORDS = ("can't allocate memory", "out of memory", "outofmemory")


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


def out_of_memory_message(error: BaseException) -> Optional[str]:
    """One line to show when `error` is the machine running out of memory (a MemoryError, or
    torch's allocator failing: "DefaultCPUAllocator: can't allocate memory", CUDA out of
    memory), else None. Only MemoryError used to be caught: --input-size 2048 --batch-size 64
    under a memory limit printed a traceback."""
    text = f"{type(error).__name__} {error}".lower()
    if isinstance(error, MemoryError) or (isinstance(error, RuntimeError) and any(w in text for w in _OUT_OF_MEMORY_WORDS)):
        return "out of memory; use a smaller --batch-size, --input-size or model (or the CPU when the GPU's memory is the limit)"
    return None
