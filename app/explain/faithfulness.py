"""Does a saliency map show what the model uses? A perturbation check of the map's top region.

A heatmap is only worth showing if hiding what it lights up changes the model's mind (the
deletion test of Petsiuk et al. 2018, RISE, cut to one step). Per image: the top
`TOP_SHARE` of the map's pixels are replaced by zeros (the normalised mean colour, the same
fill as the occlusion map) and the target class's probability is compared before and after.
One extra forward per image, so it can run on every image a window shows.

The drop in probability (percentage points, `before - after`, can be negative) is the
faithfulness hint the user reads beside a heatmap, e.g. "hiding the top 5 % of the map drops
class 3 from 97 % to 12 %". On a shortcut model the hint is large where the map sits on the
shortcut (the model decides by a few pixels) and small where the map sits on a spread object.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch
from torch import nn

TOP_SHARE = 0.05  # share of the image's pixels hidden: the map's highest


def top_region(maps: torch.Tensor, share: float = TOP_SHARE) -> torch.Tensor:
    """N x H x W bool: each map's `max(1, round(share x H x W))` highest pixels (ties by position).

    maps: N x H x W, any scale (NaN counts as lowest).
    """
    flat = torch.nan_to_num(maps.detach().float().flatten(1), nan=-torch.inf)
    count = max(1, round(share * flat.shape[1])) if flat.shape[1] else 0
    region = torch.zeros_like(flat, dtype=torch.bool)
    if count:
        region.scatter_(1, flat.topk(count, dim=1).indices, True)
    return region.reshape(maps.shape)


@dataclass(frozen=True)
class HidingEffect:
    """What hiding each image's top region did (N images)."""

    before: torch.Tensor  # N in [0, 1]: probability of the target class on the image
    after: torch.Tensor  # N in [0, 1]: the same with the top region hidden
    predicted_after: torch.Tensor  # N class indices predicted with the region hidden
    share: float = TOP_SHARE  # share of pixels hidden

    @property
    def drop(self) -> torch.Tensor:
        """N in [-1, 1]: before - after (positive: the region supported the class)."""
        return self.before - self.after

    def hint(self, row: int, classes: Optional[Sequence[str]] = None, target: Optional[int] = None) -> str:
        """One line for a heatmap, e.g. 'hiding the top 5 % of the map drops class 3 from 97 % to 12 %'."""
        name = f"class {classes[target]}" if classes is not None and target is not None else "the class"
        before, after = 100 * float(self.before[row]), 100 * float(self.after[row])
        verb = "drops" if after <= before else "raises"
        line = f"hiding the top {100 * self.share:.0f} % of the map {verb} {name} from {before:.0f} % to {after:.0f} %"
        if target is not None and int(self.predicted_after[row]) != int(target):
            flipped = classes[int(self.predicted_after[row])] if classes is not None else str(int(self.predicted_after[row]))
            line += f" (now predicted {flipped})"
        return line


def hiding_effect(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    maps: torch.Tensor,
    share: float = TOP_SHARE,
    batch_size: int = 64,
) -> HidingEffect:
    """Target probabilities with and without each map's top region (module docstring).

    images: N x 3 x H x W normalised, on the model's device; targets: N class indices;
    maps: N x h x w saliency (any scale; resized to H x W when it differs). The model runs in
    eval mode (each module's mode restored after), without gradients.
    """
    if maps.shape[-2:] != images.shape[-2:]:
        maps = torch.nn.functional.interpolate(maps[:, None].float(), size=images.shape[-2:], mode="bilinear")[:, 0]
    region = top_region(maps, share).to(images.device)
    targets = torch.as_tensor(targets, dtype=torch.long).view(-1).to(images.device)
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    before, after, predicted = [], [], []
    try:
        with torch.inference_mode():
            for start in range(0, len(images), batch_size):
                chunk = images[start : start + batch_size]
                hidden = chunk * (~region[start : start + batch_size])[:, None]
                rows = targets[start : start + batch_size].view(-1, 1)
                both = torch.softmax(model(torch.cat([chunk, hidden])), dim=1)
                before.append(both[: len(chunk)].gather(1, rows)[:, 0].cpu())
                after.append(both[len(chunk) :].gather(1, rows)[:, 0].cpu())
                predicted.append(both[len(chunk) :].argmax(1).cpu())
    finally:
        for module, training in modes:
            module.training = training
    if not before:
        empty = torch.zeros(0)
        return HidingEffect(empty, empty, torch.zeros(0, dtype=torch.long), share)
    return HidingEffect(torch.cat(before), torch.cat(after), torch.cat(predicted), share)
