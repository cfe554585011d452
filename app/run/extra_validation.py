"""Validation beyond the split: what the trainer measures besides validation loss and accuracy.

`broken_*`: the shortcut-broken validation (`app.explain.shortcut_broken`), the validation
images with the content the user painted red found and filled in, rebuilt only when the painted
masks changed (`invalidate`); `test_*`: the optional shortcut-free test folder. Either is left out
where it is unavailable, and a failure to build the first only logs: an extra metric must never
end a run.
"""

from __future__ import annotations

import logging
import tempfile
from typing import Any, Dict, Optional

import torch

from app.engine.loops import evaluate
from app.explain.locator_config import LocatorConfig
from app.explain.shortcut_broken import BrokenValidation
from datasets import MaskStore

logger = logging.getLogger(__name__)


class ExtraValidation:
    """The run's extra validation sets, and the "not this" corrections they respect."""

    def __init__(
        self,
        data: Any,
        device: torch.device,
        negatives_dir: Optional[str],
        test_loader: Any = None,
        locator: LocatorConfig = LocatorConfig(),
    ):
        """`data`: the run's splits (`.train`, `.val`); `negatives_dir`: where content
        propagation's "not this" corrections live (RunPaths.negatives_dir; None: nowhere);
        `test_loader`: the shortcut-free test folder's loader, if any; `locator`: the content
        locator's settings (`TrainConfig.locator_config()`)."""
        self.data = data
        self.locator = locator
        self.device = device
        self.negatives_dir = negatives_dir
        self.test_loader = test_loader
        self._broken: Optional[BrokenValidation] = None
        self._stale = True
        self._scratch: Optional[tempfile.TemporaryDirectory] = None  # corrections of a run without a folder

    def invalidate(self) -> None:
        """The hand-painted masks changed: rebuild the shortcut-broken validation when next asked."""
        self._stale = True

    def negative_store(self) -> MaskStore:
        """The "not this" corrections of content propagation: in the run's negatives folder, or,
        for a run without one, in a temporary folder that lives as long as this run (a correction
        must always reach the next preview; it is only not kept for later runs)."""
        folder = self.negatives_dir
        if not folder:
            if self._scratch is None:
                self._scratch = tempfile.TemporaryDirectory(prefix="not-this-")
            folder = self._scratch.name
        return MaskStore(folder, self.data.train.relpaths)

    def broken(self) -> Optional[BrokenValidation]:
        """The shortcut-broken validation for the current masks (None when nothing is painted
        red, or when building it failed, which is logged)."""
        if self._stale:
            self._stale = False
            try:
                self._broken = BrokenValidation.build(
                    self.data.train,
                    self.data.val,
                    device=self.device,
                    negative_store=self.negative_store(),
                    config=self.locator,
                )
            except Exception:  # noqa: BLE001 -- a missing extra metric must not end the run
                logger.exception("shortcut-broken validation not built")
                self._broken = None
        return self._broken

    def metrics(self, model: torch.nn.Module) -> Dict[str, float]:
        """broken_accuracy/broken_loss/broken_found and test_accuracy/test_loss, where available."""
        extra: Dict[str, float] = {}
        broken = self.broken()
        if broken is not None:
            metrics = broken.evaluate(model, self.device)
            extra.update({f"broken_{k}": v for k, v in metrics.items()})
        if self.test_loader is not None:
            metrics = evaluate(model, self.test_loader, device=self.device)
            extra.update({"test_accuracy": metrics["accuracy"], "test_loss": metrics["loss"]})
        return extra
