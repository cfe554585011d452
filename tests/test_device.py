"""Tests for models/device.py: device choice and its human label (CUDA faked where absent)."""

from __future__ import annotations

import pytest
import torch

from models import DeviceError, device_label, pick_device


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)


@pytest.fixture
def one_fake_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H100")


def test_cpu_and_case_insensitive_names():
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device(" CPU ") == torch.device("cpu")


def test_auto_is_cpu_without_cuda(no_cuda):
    assert pick_device() == torch.device("cpu")
    assert pick_device("auto") == torch.device("cpu")


def test_auto_is_cuda_when_available(one_fake_gpu):
    assert pick_device("auto") == torch.device("cuda")
    assert pick_device("cuda:0") == torch.device("cuda", 0)


def test_cuda_without_cuda_says_why_and_what_to_use(no_cuda):
    for name in ("cuda", "cuda:0"):
        with pytest.raises(DeviceError) as info:
            pick_device(name)
        message = str(info.value)
        assert "CUDA is not available" in message and "'cpu'" in message
    assert issubclass(DeviceError, ValueError)


def test_cuda_index_beyond_the_gpus(one_fake_gpu):
    with pytest.raises(DeviceError, match="has 1 CUDA GPU"):
        pick_device("cuda:3")


def test_bad_names(monkeypatch):
    with pytest.raises(DeviceError, match="cuda:N"):
        pick_device("cuda:x")
    with pytest.raises(DeviceError, match="'auto', 'cpu', 'cuda'"):
        pick_device("tpu")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(DeviceError, match="Apple GPU"):
        pick_device("mps")


def test_labels(one_fake_gpu):
    assert device_label(torch.device("cpu")) == "CPU"
    assert device_label("cpu") == "CPU"
    assert device_label(torch.device("cuda", 0)) == "CUDA: NVIDIA H100"
    assert device_label(torch.device("mps")) == "MPS (Apple GPU)"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_real_cuda_device():
    device = pick_device("auto")
    assert device.type == "cuda"
    assert device_label(device).startswith("CUDA: ")
    assert torch.zeros(1, device=device).device.type == "cuda"
