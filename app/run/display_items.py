"""What the windows show of the model, built in the training thread (the UI never runs it).

Functions of (model, training data, device) that return `app.run.messages`' frozen items: the
images of a feedback round (`FeedbackItem`), the chooser's before/after panels (`Comparison`),
content-propagation thumbnails (`PreviewItem`) and the gallery's predictions (`GalleryEntry`).
They run the model in eval mode and read images and masks; they emit nothing and keep no state.
"""

from __future__ import annotations

from typing import List, Sequence, Tuple

import numpy as np
import torch

from app.engine.finetune import FinetuneResult
from app.explain.faithfulness import hiding_effect
from app.explain.propagation import PropagationPlan
from app.explain.saliency import normalise_maps, saliency_maps
from app.run import messages as msg
from datasets import stack_samples
from datasets.display import DISPLAY_MAX_SIDE

COMPARISONS_MAX = 12  # annotated images shown in the chooser
PREVIEW_SIDE = 160  # long side of a content-propagation preview thumbnail
PREVIEW_ITEMS = 48  # thumbnails per page of a content preview (every find can be paged to)
GALLERY_MAX = 5000  # training images the gallery lists with predictions
GALLERY_CHUNK = 128  # images per forward when predicting for the gallery
GALLERY_PAINT_MAX = 48  # images added to the brush window at once


def predictions(model: torch.nn.Module, images: torch.Tensor) -> Tuple[List[int], List[float]]:
    """(predicted class, its softmax probability) per image; `images`: N x C x H x W, normalised.
    Leaves the model in eval mode."""
    model.eval()
    with torch.inference_mode():
        probabilities = torch.softmax(model(images), dim=1)
    confidence, predicted = probabilities.max(1)
    return predicted.tolist(), confidence.tolist()


def saliency(model: torch.nn.Module, images: torch.Tensor, targets: torch.Tensor, method: str) -> np.ndarray:
    """N x H x W saliency of each image for its target class (`app.explain.saliency`)."""
    return saliency_maps(model, images, targets, method).numpy()


def feedback_items(
    model: torch.nn.Module,
    train,
    indices: Sequence[int],
    reasons: Sequence[str],
    *,
    device: torch.device,
    saliency_method: str,
) -> List[msg.FeedbackItem]:
    """One `FeedbackItem` per training index (its display image, saliency, prediction and any
    saved mask), `reasons[k]` saying why image k is shown, followed by the map's faithfulness
    hint (`app.explain.faithfulness`: what hiding the map's top region does to the class)."""
    if not indices:
        return []
    images, targets, _, _ = stack_samples(train, indices, device)
    predicted, confidence = predictions(model, images)
    raw = saliency_maps(model, images, targets, saliency_method, normalise=False)
    effect = hiding_effect(model, images, targets, raw.to(images.device))
    maps = normalise_maps(raw).numpy()
    classes = train.classes
    target_list = [int(t) for t in targets]
    hints = [effect.hint(row, classes, target_list[row]) for row in range(len(indices))]
    reasons = [f"{reason}; {hint}" if reason else hint for reason, hint in zip(reasons, hints)]
    items = []
    for row, (index, reason) in enumerate(zip(indices, reasons)):
        relpath = train.relpaths[index]
        items.append(
            msg.FeedbackItem(
                relpath=relpath,
                image=train.display_image(index, max_side=DISPLAY_MAX_SIDE),
                saliency=maps[row],
                true_label=classes[int(targets[row])],
                predicted_label=classes[predicted[row]],
                confidence=float(confidence[row]),
                mask=train.masks.load_array(relpath) if train.masks is not None else None,
                reason=reason,
            )
        )
    return items


def comparisons(
    model: torch.nn.Module,
    result: FinetuneResult,
    train,
    relpaths: Sequence[str],
    *,
    device: torch.device,
    saliency_method: str,
) -> Tuple[msg.Comparison, ...]:
    """Before/after panels of the round's painted images (`relpaths` that have a mask; else the
    images the fine-tune used), at most COMPARISONS_MAX: `model` before, `result.candidate` after."""
    wanted = [r for r in relpaths if train.masks is not None and train.masks.has(r)]
    if not wanted:
        wanted = [train.relpaths[i] for i in result.annotated_indices]
    indices = [train.index_of(r) for r in wanted[:COMPARISONS_MAX]]
    if not indices:
        return ()
    images, targets, _, _ = stack_samples(train, indices, device)
    old_pred, old_conf = predictions(model, images)
    new_pred, new_conf = predictions(result.candidate, images)
    old_saliency = saliency(model, images, targets, saliency_method)
    new_saliency = saliency(result.candidate, images, targets, saliency_method)
    classes = train.classes
    panels = []
    for row, index in enumerate(indices):
        panels.append(
            msg.Comparison(
                relpath=train.relpaths[index],
                image=train.display_image(index, max_side=DISPLAY_MAX_SIDE),
                mask=train.masks.load_array(train.relpaths[index]),
                saliency_old=old_saliency[row],
                saliency_new=new_saliency[row],
                true_label=classes[int(targets[row])],
                predicted_old=classes[old_pred[row]],
                predicted_new=classes[new_pred[row]],
                confidence_old=float(old_conf[row]),
                confidence_new=float(new_conf[row]),
            )
        )
    return tuple(panels)


def preview_page_relpaths(ranked: Sequence[str], start: int = 0, limit: int = PREVIEW_ITEMS) -> List[str]:
    """The finds on the page that begins at `start` of `ranked` (best first): every find can be
    looked at a page at a time, as review queues do; [] past the end."""
    start = max(0, int(start))
    return list(ranked[start : start + limit])


def preview_items(train, plan: PropagationPlan, start: int = 0) -> Tuple[msg.PreviewItem, ...]:
    """Thumbnails of a content plan's finds on the page from `start` (best first), each with its
    found region at the thumbnail's size; () for the other scopes and for a plan that found nothing."""
    if plan.scope != "content" or not plan.targets:
        return ()
    items = []
    for relpath in preview_page_relpaths(plan.ranked(), start):
        thumbnail = train.display_image(train.index_of(relpath), max_side=PREVIEW_SIDE)
        region = plan.found_mask(relpath, thumbnail.shape[:2])
        items.append(msg.PreviewItem(relpath, thumbnail, region, plan.confidence.get(relpath, 0.0)))
    return tuple(items)


def preview_page(train, plan: PropagationPlan, start: int) -> Tuple[msg.PreviewItem, ...]:
    """The page of `plan`'s finds from `start` (`PreviewPage`'s answer)."""
    return preview_items(train, plan, start)


def describe_images(model: torch.nn.Module, train, *, device: torch.device) -> msg.ImagesDescribed:
    """The gallery's list: label, prediction and confidence of the first GALLERY_MAX training
    images, predicted GALLERY_CHUNK at a time."""
    count = min(len(train), GALLERY_MAX)
    classes = train.classes
    entries = []
    for start in range(0, count, GALLERY_CHUNK):
        indices = list(range(start, min(count, start + GALLERY_CHUNK)))
        images, targets, _, _ = stack_samples(train, indices, device)
        predicted, confidence = predictions(model, images)
        for row, index in enumerate(indices):
            entries.append(
                msg.GalleryEntry(
                    train.relpaths[index], classes[int(targets[row])], classes[predicted[row]], float(confidence[row])
                )
            )
    return msg.ImagesDescribed(tuple(entries), len(train))


def prepare_images(
    model: torch.nn.Module, train, relpaths: Sequence[str], *, device: torch.device, saliency_method: str
) -> msg.ImagesPrepared:
    """Feedback items for the images the user picked in the gallery (the first
    GALLERY_PAINT_MAX known ones), and the relpaths that are not training images."""
    known = set(train.relpaths)
    wanted = [r for r in relpaths if r in known][:GALLERY_PAINT_MAX]
    missing = tuple(r for r in relpaths if r not in known)
    indices = [train.index_of(r) for r in wanted]
    items = feedback_items(
        model, train, indices, ["chosen by you"] * len(indices), device=device, saliency_method=saliency_method
    )
    return msg.ImagesPrepared(tuple(items), missing)
