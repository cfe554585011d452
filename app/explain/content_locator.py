"""Find what the user painted red in other images, wherever it sits (content-aware propagation).

A red stroke usually marks a thing (a watermark, a tag, a ruler, a stamp) that sits in a
different place, at a somewhat different size, in every image; copying the painted pixels to
the same place (the positional scopes of `app.explain.propagation`) only fixes shortcuts that
stand still. `ContentLocator` learns from the strokes of a few images what the painted content
looks like, ilastik-style, and finds it in every other image:

1. per pixel, multi-scale filter responses (`app.explain.pixel_features`) at a working
   resolution of at most `LocatorConfig.work_side` pixels;
2. a per-pixel two-layer perceptron trained on the painted pixels and recoloured copies of the
   painted images (`app.explain.locator_training`): a perceptron, not ilastik's random forest,
   because predicting it over 10,000 images is two matrix products on the GPU;
3. a probability threshold calibrated on held-out recolourings (`app.explain.threshold_calibration`);
4. per image, the connected regions above it that pass the area, "not this" and weak-find rules,
   grown back by the painted rim (`app.explain.locator_regions`).

Settings: `LocatorConfig` (`app.explain.locator_config`). Measurements behind the choices, and the
variants that were tried and dropped: docs/content_locator.md.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from app.errors import UserError
from app.explain.locator_config import LocatorConfig
from app.explain.locator_regions import Regions, core, grow, label_regions, strongest, vetoed
from app.explain.locator_training import LabelledPixels, labelled_pixels, recoloured, train_perceptron
from app.explain.pixel_features import feature_count, pixel_features
from app.explain.threshold_calibration import calibrate_threshold
from datasets.masks import resize_bool

__all__ = ["ContentLocator", "FoundContent", "LocatorConfig", "feature_count", "pixel_features"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FoundContent:
    """Where the painted content was found in one image."""

    mask: np.ndarray  # bool h x w at the working resolution: the found regions grown by the rim (the painted extent)
    confidence: float  # mean probability of the best region, in [0, 1]; 0 when nothing was found
    regions: int  # how many regions were kept

    @property
    def found(self) -> bool:
        return self.regions > 0


class ContentLocator:
    """A per-pixel classifier of "the painted content", trained on a few painted images.

    `fit` learns from images and their masks; `locate` finds the content in other images.
    Images are always N x 3 x H x W in [0, 1] (any H, W: resized to the working resolution).
    """

    def __init__(self, config: LocatorConfig = LocatorConfig(), device: torch.device = torch.device("cpu")):
        self.config = config
        self.device = device
        self.side: Optional[int] = None  # the working resolution, set by fit
        self.threshold: float = 0.5  # probability threshold, calibrated by fit
        self.source_iou: float = 0.0  # mean IoU of the calibrated prediction with the painted red
        self.area_bounds: Tuple[float, float] = (0.0, math.inf)  # allowed region areas, in pixels
        self._mean: Optional[Tensor] = None
        self._std: Optional[Tensor] = None
        self._net: Optional[nn.Module] = None
        self._right_looks: Optional[Tensor] = None  # P x F standardised: the painted content's looks
        self._wrong_looks: Optional[Tensor] = None  # K x F standardised: the "not this" looks

    # -- helpers
    def _working(self, images: Tensor) -> Tensor:
        images = images.to(self.device, torch.float32)
        if images.shape[-1] != self.side or images.shape[-2] != self.side:
            images = F.interpolate(images, size=(self.side, self.side), mode="area")
        return images

    def _raw_features(self, images: Tensor) -> Tensor:
        """N x F x h x w unstandardised filter responses at the working resolution."""
        return pixel_features(self._working(images), self.config)

    def _features(self, images: Tensor) -> Tensor:
        features = self._raw_features(images)
        if self._mean is not None:
            features = (features - self._mean) / self._std
        return features

    def _standard(self, rows: Tensor) -> Tensor:
        """M x F feature rows standardised with the labelled pixels' statistics."""
        return (rows - self._mean.view(1, -1)) / self._std.view(1, -1)

    def rim_pixels(self) -> int:
        """The painted red's unlearnt rim at the working resolution (0 for none)."""
        return max(0, int(round(self.config.rim * (self.side or 32) / 32)))

    def growth_pixels(self) -> int:
        """How far each found region is grown: the rim training left out (so a find has the
        extent of what was painted), and at least one pixel, since the threshold cuts a region's
        soft edge."""
        return max(1, self.rim_pixels())

    def margin_pixels(self) -> int:
        """The brush margin at the working resolution."""
        return max(1, int(round(self.config.margin * (self.side or 32) / 32)))

    @torch.no_grad()
    def probabilities(self, images: Tensor) -> Tensor:
        """N x h x w in [0, 1]: the probability that each pixel shows the painted content."""
        if self._net is None:
            raise RuntimeError("fit the locator before using it")
        self._net.eval()
        out = []
        for start in range(0, images.shape[0], self.config.batch_images):
            features = self._features(images[start : start + self.config.batch_images])
            out.append(torch.sigmoid(self._net(features))[:, 0].float().cpu())
        return torch.cat(out) if out else torch.zeros(0, self.side or 0, self.side or 0)

    # -- training
    def fit(
        self,
        images: Tensor,
        red: Sequence[np.ndarray],
        green: Optional[Sequence[Optional[np.ndarray]]] = None,
        negatives: Optional[Sequence[Tuple[Tensor, np.ndarray]]] = None,
    ) -> "ContentLocator":
        """Learn the content under `red` from the painted images.

        Args:
            images: S x 3 x H x W in [0, 1], the painted images (S >= 1).
            red: S bool masks (any size each; resized) marking the content.
            green: S bool masks or None: "look here", certainly not the content.
            negatives: (image 3 x H x W in [0, 1], bool mask) pairs: "not this" corrections,
                pixels that were wrongly found (on any image).
        Raises:
            UserError: when no image has red.
        """
        config = self.config
        if images.shape[0] == 0 or not any(np.asarray(r).any() for r in red):
            raise UserError("nothing is painted red: paint the thing to find on at least one image")
        self.side = int(min(config.work_side, max(images.shape[-2:])))
        generator = torch.Generator().manual_seed(config.seed)
        pixels = labelled_pixels(
            images,
            red,
            green,
            negatives,
            generator,
            config=config,
            side=self.side,
            margin=self.margin_pixels(),
            rim=self.rim_pixels(),
            features_of=self._raw_features,
        )
        self._net = self._train(pixels)
        self._calibrate(images, red, pixels.areas, generator)
        logger.info(
            "content locator: %d painted images, %d/%d labelled pixels, working side %d, "
            "threshold %.2f, IoU on the painted images %.2f",
            pixels.n_images,
            pixels.content.shape[0],
            pixels.not_content.shape[0],
            self.side,
            self.threshold,
            self.source_iou,
        )
        return self

    def _train(self, pixels: LabelledPixels) -> nn.Module:
        """Standardise with the labelled pixels' statistics (both classes alike), keep the looks
        the region veto compares, and train the perceptron on balanced classes."""
        positive, negative = pixels.content, pixels.not_content
        both = torch.cat([positive, negative])
        self._mean = both.mean(0).view(1, -1, 1, 1)
        self._std = both.std(0).clamp_min(1e-6).view(1, -1, 1, 1)
        x = self._standard(both)
        self._right_looks = self._standard(torch.stack(pixels.right_looks)).cpu() if pixels.right_looks else None
        self._wrong_looks = self._standard(torch.stack(pixels.wrong_looks)).cpu() if pixels.wrong_looks else None
        y = torch.cat([torch.ones(positive.shape[0]), torch.zeros(negative.shape[0])]).to(x.device)
        # Balanced classes: each class carries half the loss, whatever its pixel count.
        positive_weights = torch.full((positive.shape[0],), 1.0 / positive.shape[0]).to(x.device)
        weights = torch.cat([positive_weights, pixels.not_weights]) / 2
        return train_perceptron(x, y, weights, self.config, self.device)

    def _calibrate(
        self, painted: Tensor, painted_red: Sequence[np.ndarray], areas: List[float], generator: torch.Generator
    ) -> None:
        """Set the region area bounds (`LocatorConfig.area_range` x the painted areas), the
        threshold and `source_iou`, on the painted images and recoloured copies the perceptron has
        not seen (fresh colours, as other images' content may have): calibrating on the training
        pixels alone picks thresholds too strict for content of a new colour."""
        config = self.config
        copies = max(1, config.jitter_copies // 4)
        held_out, held_red, _ = recoloured(painted, list(painted_red), None, generator, copies, config)
        probabilities = self.probabilities(held_out).numpy()
        side = (self.side, self.side)
        truths = [core(resize_bool(np.asarray(r, dtype=bool), side), self.rim_pixels()) for r in held_red]
        measured = np.array(areas or [1.0], dtype=np.float64)
        low, high = config.area_range
        self.area_bounds = (float(measured.min() * low), float(measured.max() * high))
        self.threshold, self.source_iou = calibrate_threshold(
            probabilities,
            truths,
            lambda probability, threshold: self._regions(probability, threshold)[0] > 0,
            config.recall_beta,
            config.max_threshold,
        )

    # -- prediction
    def _regions(self, probability: np.ndarray, threshold: float) -> Regions:
        """(labels h x w int: kept regions numbered from 1, their confidences)."""
        return label_regions(probability, threshold, self.area_bounds)

    def _strongest(self, labels: np.ndarray, confidences: List[float], probability: np.ndarray) -> Regions:
        """The regions that are not weak side-finds (`locator_regions.strongest`)."""
        return strongest(labels, confidences, probability, self.config.weak_find_mass)

    def locate(self, images: Tensor) -> List[FoundContent]:
        """Find the content in each of N x 3 x H x W images in [0, 1] (working resolution out).

        A region that looks more like a "not this" correction than like any painted content
        (mean standardised features, Euclidean) is dropped, whatever its probability; then the
        weak side-finds (`_strongest`).
        """
        if self._net is None:
            raise RuntimeError("fit the locator before using it")
        self._net.eval()
        growth = self.growth_pixels()
        found = []
        with torch.no_grad():
            for start in range(0, images.shape[0], self.config.batch_images):
                features = self._features(images[start : start + self.config.batch_images])
                probabilities = torch.sigmoid(self._net(features))[:, 0].float().cpu().numpy()
                for row, probability in enumerate(probabilities):
                    labels, confidences = self._regions(probability, self.threshold)
                    if self._wrong_looks is not None and confidences:
                        labels, confidences = vetoed(
                            labels, confidences, features[row].cpu(), self._right_looks, self._wrong_looks
                        )
                    # after the veto, so that a vetoed look-alike cannot make the real find look weak
                    labels, confidences = self._strongest(labels, confidences, probability)
                    mask = grow(labels > 0, growth)
                    found.append(FoundContent(mask, max(confidences, default=0.0), len(confidences)))
        return found
