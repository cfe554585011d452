"""Choose the torch device to train on, and name it for people."""

from __future__ import annotations

import torch


class DeviceError(ValueError):
    """A device name that is invalid or not available on this machine."""


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def pick_device(name: str = "auto") -> torch.device:
    """The device called `name`: "auto" (CUDA if available, else CPU), "cpu", "cuda",
    "cuda:N" or "mps". Raises `DeviceError` saying why when it cannot be used here."""
    name = name.strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "mps":
        if not _mps_available():
            raise DeviceError("device 'mps' is not available here (it needs an Apple GPU); use 'cpu'")
        return torch.device("mps")
    if name == "cuda" or name.startswith("cuda:"):
        try:
            device = torch.device(name)
        except RuntimeError:
            raise DeviceError(f"invalid CUDA device {name!r}; write 'cuda' or 'cuda:N'") from None
        if not torch.cuda.is_available():
            raise DeviceError(
                f"device {name!r} asked for, but CUDA is not available on this machine "
                "(no NVIDIA GPU, or a CPU-only PyTorch); use 'cpu' or 'auto'"
            )
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise DeviceError(f"device {name!r} does not exist: this machine has {count} CUDA GPU(s)")
        return device
    raise DeviceError(f"unknown device {name!r}; choose 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'")


def device_label(device: torch.device | str) -> str:
    """A short name for the user: "CPU", "CUDA: <GPU name>" or "MPS (Apple GPU)"."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"CUDA: {torch.cuda.get_device_name(device)}"
    if device.type == "mps":
        return "MPS (Apple GPU)"
    return device.type.upper()
