"""A simulated user for the effectiveness benchmark: paints what a person would, on the demo data.

Shown an image of the demo shortcut data, a person paints the swatch they see red, with a brush
a little larger than the swatch (one pixel of margin all round), and the digit green. The demo's
ground-truth masks (`<demo>/truth/<split>/<relpath>`) say exactly where the swatch and the digit
are, so the simulated user reads them instead of looking; what it paints is not the truth mask
itself but the dilated red plus the green, saved at the displayed image's size with
`meta = {"source": "painted", "by": "simulated user"}`, as the brush window would save it.

Also builds the oracle's data: a copy of train/val with every swatch painted over with the
background's noise, so a model trained on it never sees a swatch. `ScriptedUser` is the same
person at the app: it answers a trainer's feedback rounds (paint, propagate, fine-tune, commit).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional

import numpy as np
from PIL import Image

from app.explain.propagation import hand_painted
from app.run import Trainer
from app.run import messages as msg
from datasets import GREEN, RED, MaskStore
from datasets.masks import read_mask_array, resize_mask

PAINTED_META = {"source": "painted", "by": "simulated user"}
BRUSH_MARGIN = 1  # pixels of red beyond the swatch on every side (at the image's own size)


def _rounded(value: Optional[float]) -> Optional[float]:
    return None if value is None else round(value, 3)


def grow(region: np.ndarray, pixels: int) -> np.ndarray:
    """bool H x W region grown by `pixels` in all 8 directions."""
    grown = region.copy()
    for _ in range(pixels):
        padded = np.pad(grown, 1)
        height, width = grown.shape
        step = np.zeros_like(grown)
        for dy in range(3):
            for dx in range(3):
                step |= padded[dy : dy + height, dx : dx + width]
        grown = step
    return grown


class SimulatedUser:
    """Paints demo images into a mask store the way a person with a brush would."""

    def __init__(self, truth_dir: os.PathLike | str, margin: int = BRUSH_MARGIN, paint_green: bool = True):
        self.truth_dir = Path(truth_dir)
        self.margin = margin
        self.paint_green = paint_green
        self.painted: List[str] = []

    def mask_for(self, relpath: str) -> np.ndarray:
        """np.int8 H x W: red over the swatch (grown by the brush margin), green over the digit."""
        truth = read_mask_array(self.truth_dir / Path(relpath).with_suffix(".png"))
        red = grow(truth == RED, self.margin)
        mask = np.zeros(truth.shape, np.int8)
        if self.paint_green:
            mask[truth == GREEN] = GREEN
        mask[red] = RED
        return mask

    def paint(self, store: MaskStore, relpaths: Iterable[str]) -> List[str]:
        """Paint each image into `store`; returns the relpaths painted (in order)."""
        done = []
        for relpath in relpaths:
            store.save(relpath, self.mask_for(relpath), meta=PAINTED_META)
            done.append(relpath)
        self.painted.extend(done)
        return done


def mask_quality(store: MaskStore, truth_dir: os.PathLike | str, relpaths: Iterable[str], margin: int = BRUSH_MARGIN) -> dict:
    """How well propagated masks cover the shortcut, against the truth masks.

    For each image: IoU of the mask's red with the truth red grown by `margin` (what a person
    paints), and whether the red touches the truth red at all (a correct find). Returns the
    mean IoU, the share of the true red pixels covered, and the image-level precision (finds
    that touch the shortcut / images given a mask). Images with no mask count as IoU 0.
    """
    truth_dir = Path(truth_dir)
    ious, covered, hits, n = [], [], 0, 0
    for relpath in relpaths:
        truth = read_mask_array(truth_dir / Path(relpath).with_suffix(".png")) == RED
        mask = store.load_array(relpath)
        n += 1
        if mask is None:
            ious.append(0.0)
            covered.append(0.0)
            continue
        if mask.shape != truth.shape:
            mask = (
                np.asarray(Image.fromarray((mask + 1).astype(np.uint8)).resize(truth.shape[::-1], Image.NEAREST)).astype(np.int8)
                - 1
            )
        red = mask == RED
        painted = grow(truth, margin)
        union = (red | painted).sum()
        ious.append(float((red & painted).sum() / union) if union else 1.0)
        covered.append(float((red & truth).sum() / max(1, truth.sum())))
        hits += bool((red & truth).any())
    masked = sum(1 for relpath in relpaths if store.has(relpath)) if n else 0
    return {
        "iou": float(np.mean(ious)) if ious else 0.0,
        "covered": float(np.mean(covered)) if covered else 0.0,
        "precision": hits / masked if masked else 0.0,
        "images": n,
        "masked": masked,
        "hits": hits,
    }


def swatch_free_copy(
    image_dir: os.PathLike | str, truth_dir: os.PathLike | str, out_dir: os.PathLike | str, noise_sigma: float, seed: int = 0
) -> Path:
    """Copy an image folder, replacing every swatch (red in the truth mask) by background noise.

    The demo's background is black under Gaussian noise of `noise_sigma` grey levels, clipped at
    0; the swatch pixels get fresh noise of the same kind, so nothing marks where a swatch was.
    """
    image_dir, truth_dir, out_dir = Path(image_dir), Path(truth_dir), Path(out_dir)
    rng = np.random.default_rng(seed)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    for path in sorted(image_dir.rglob("*.png")):
        relpath = path.relative_to(image_dir)
        pixels = np.array(Image.open(path).convert("L"), dtype=np.float64)
        swatch = read_mask_array(truth_dir / relpath) == RED
        noise = np.clip(rng.normal(0.0, noise_sigma, size=pixels.shape), 0, 255)
        pixels[swatch] = noise[swatch]
        target = out_dir / relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.rint(pixels).astype(np.uint8), mode="L").save(target)
    return out_dir


class ScriptedUser:
    """Answers the trainer's feedback requests as a person at the app would.

    FeedbackNeeded: paint the offered images (up to the remaining budget of hand-painted images),
    ask the trainer to propagate the red of every hand-painted image with `scope`
    (`ApplyPropagation`, the brush window's "Apply to..." button: the union of the round's strokes,
    each swatch corner seen becomes "never here"), then start the fine-tune round. A round with no
    budget left is skipped. FinetuneDone: commit (the user sees the saliency leave the swatch;
    validation accuracy on the shortcut-bearing val split may drop, which is the point).
    """

    def __init__(self, user: SimulatedUser, budget: int, scope: Optional[str], corrections: int = 0):
        """corrections: with scope "content", look at the preview first and mark "not this" on
        up to this many of its thumbnails whose found region lies off the swatch (a careful user,
        as in ilastik; 0 = the hurried user who accepts the plan); needs the run's negatives_dir."""
        self.user = user
        self.budget = budget
        self.scope = scope
        self.corrections = corrections
        self.rounds: List[Dict[str, Any]] = []
        self.store: Optional[MaskStore] = None
        self.train_relpaths: List[str] = []
        self._round_relpaths: List[str] = []

    def __call__(self, trainer: Trainer, event: Any) -> None:
        if isinstance(event, msg.FeedbackNeeded):
            left = self.budget - len(self.user.painted)
            if left <= 0:
                trainer.submit(msg.SkipFeedback())
                return
            relpaths = [item.relpath for item in event.items][:left]
            store = trainer.data.train.masks
            self.store, self.train_relpaths = store, list(trainer.data.train.relpaths)
            self.user.paint(store, relpaths)
            self.rounds.append({"epoch": event.epoch, "painted": relpaths, "reasons": [i.reason for i in event.items][:left]})
            if self.scope == "content" and self.corrections > 0:
                self._round_relpaths = list(relpaths)
                trainer.submit(msg.PreviewPropagation(tuple(hand_painted(store)), self.scope))
                return
            self._propagate_and_start(trainer, relpaths)
        elif isinstance(event, msg.PropagationPreview):
            marked = 0
            for item in event.items:
                if marked >= self.corrections:
                    break
                wrong = self.wrongly_found(item.relpath, item.region)
                if wrong.any():
                    trainer.submit(msg.MarkNotThis(item.relpath, wrong))
                    marked += 1
            self.rounds[-1]["not_this"] = marked
            self._propagate_and_start(trainer, self._round_relpaths)
        elif isinstance(event, msg.PropagationApplied):
            self.rounds[-1]["propagated"] = event.written
            others = [r for r in self.train_relpaths if r not in set(self.user.painted)]
            quality = mask_quality(self.store, self.user.truth_dir, others)
            self.rounds[-1]["mask_quality"] = {k: round(v, 3) if isinstance(v, float) else v for k, v in quality.items()}
        elif isinstance(event, msg.PropagationFailed):
            raise RuntimeError(f"propagation failed: {event.message}\n{event.details}")
        elif isinstance(event, msg.FinetuneDone):
            self.rounds[-1]["finetune"] = {
                "stop": event.report.stop_reason,
                "steps": event.report.steps,
                "red_share": [round(event.report.red_share_before, 3), round(event.report.red_share_after, 3)],
                "val_accuracy": [round(event.report.val_accuracy_before, 3), round(event.report.val_accuracy_after, 3)],
                "broken_accuracy": [_rounded(event.report.broken_accuracy_before), _rounded(event.report.broken_accuracy_after)],
                "verdict": event.report.verdict,
            }
            trainer.submit(msg.Commit())

    def _propagate_and_start(self, trainer: Trainer, relpaths: List[str]) -> None:
        painted_red = self.store is not None and any(
            (self.store.load_array(relpath) == RED).any() for relpath in hand_painted(self.store)
        )
        if not painted_red and self.rounds:  # none of the offered images showed the shortcut: nothing to apply
            self.rounds[-1]["propagated"] = 0
        if self.scope is not None and painted_red:
            # Commands are handled in order: the propagation is written before the round starts.
            trainer.submit(msg.ApplyPropagation(tuple(hand_painted(self.store)), self.scope))
        trainer.submit(msg.StartFinetune(tuple(relpaths)))

    def wrongly_found(self, relpath: str, region: np.ndarray) -> np.ndarray:
        """The part of a preview's found `region` (bool, thumbnail size) away from the swatch:
        what a person would stroke as "not this" (the found blobs off the swatch and its margin)."""
        truth = read_mask_array(self.user.truth_dir / Path(relpath).with_suffix(".png"))
        scale = region.shape[0] / truth.shape[0]  # thumbnail pixels per image pixel
        near = grow(resize_mask(truth, region.shape) == RED, int(np.ceil((self.user.margin + 1) * scale)))
        return np.asarray(region, dtype=bool) & ~near
