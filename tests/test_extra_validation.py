"""Tests for app/run/extra_validation.py: the shortcut-broken validation is built once per change
of the painted masks, a failure to build it is logged, and the extra metrics are left out where
there is nothing to measure."""

import logging
from types import SimpleNamespace

import torch

from app.run import extra_validation
from app.run.extra_validation import ExtraValidation
from datasets import MaskStore

CPU = torch.device("cpu")
DATA = SimpleNamespace(train=SimpleNamespace(relpaths=["a/1.png", "b/2.png"]), val=SimpleNamespace())


class CountingBuild:
    """Stands in for BrokenValidation.build: counts the builds and returns `result`."""

    def __init__(self, result=None, error=None):
        self.calls, self.result, self.error = [], result, error

    def __call__(self, train, val, *, device, negative_store, config=None):
        self.calls.append(negative_store)
        self.config = config
        if self.error is not None:
            raise self.error
        return self.result


def test_without_a_negatives_folder_corrections_go_to_a_folder_of_the_run(tmp_path):
    """A bare run has no negatives folder; "not this" must still reach the next preview, so its
    corrections live in a temporary folder as long as the run (the same one every time)."""
    validation = ExtraValidation(DATA, CPU, None)
    scratch = validation.negative_store()
    assert isinstance(scratch, MaskStore) and scratch.masks_dir == validation.negative_store().masks_dir
    store = ExtraValidation(DATA, CPU, str(tmp_path / "negatives")).negative_store()
    assert isinstance(store, MaskStore) and str(store.masks_dir) == str(tmp_path / "negatives")


def test_broken_validation_is_rebuilt_only_after_invalidate(monkeypatch):
    build = CountingBuild(result="built")
    monkeypatch.setattr(extra_validation.BrokenValidation, "build", build)
    validation = ExtraValidation(DATA, CPU, None)
    assert validation.broken() == "built" and validation.broken() == "built"
    assert len(build.calls) == 1
    validation.invalidate()
    validation.broken()
    assert len(build.calls) == 2


def test_the_runs_locator_settings_reach_the_build(monkeypatch):
    from app.explain.locator_config import LocatorConfig

    build = CountingBuild(result="built")
    monkeypatch.setattr(extra_validation.BrokenValidation, "build", build)
    locator = LocatorConfig(rim=2.0)
    ExtraValidation(DATA, CPU, None, locator=locator).broken()
    assert build.config is locator


def test_a_failed_build_is_logged_and_gives_no_broken_metrics(monkeypatch, caplog):
    monkeypatch.setattr(extra_validation.BrokenValidation, "build", CountingBuild(error=RuntimeError("boom")))
    validation = ExtraValidation(DATA, CPU, None)
    with caplog.at_level(logging.ERROR, logger="app.run.extra_validation"):
        assert validation.metrics(torch.nn.Identity()) == {}
    assert "shortcut-broken validation not built" in caplog.text


def test_metrics_are_prefixed_by_where_they_come_from(monkeypatch):
    broken = SimpleNamespace(evaluate=lambda model, device: {"accuracy": 0.5, "loss": 1.0, "found": 3})
    monkeypatch.setattr(extra_validation.BrokenValidation, "build", CountingBuild(result=broken))
    monkeypatch.setattr(extra_validation, "evaluate", lambda model, loader, device: {"accuracy": 0.75, "loss": 0.25})
    metrics = ExtraValidation(DATA, CPU, None, test_loader=object()).metrics(torch.nn.Identity())
    assert metrics == {
        "broken_accuracy": 0.5,
        "broken_loss": 1.0,
        "broken_found": 3,
        "test_accuracy": 0.75,
        "test_loss": 0.25,
    }
