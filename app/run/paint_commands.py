"""The commands the trainer answers while a feedback round waits for paint.

The brush window asks, the training thread answers (the UI never runs the model, and the model is
not being trained meanwhile): `PreviewPropagation` / `ApplyPropagation` (answered by
`PropagationPreview` / `PropagationApplied`, with `PropagationProgress` meanwhile; an Apply of a
reviewed preview writes that plan without searching again), `MarkNotThis` (a "not this"
correction saved in the negatives folder, a temporary one for a run without), `PreviewPage`
(more finds of the kept plan), `DescribeImages` / `PrepareImages` (the gallery: `ImagesDescribed` /
`ImagesPrepared`). A failure never ends the round: propagation and corrections answer
`PropagationFailed`, the gallery only logs.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any, Callable, Optional, Tuple

import numpy as np

from app.errors import user_error_types
from app.explain.propagation import PropagationPlan, apply_propagation, painted_red_sources, plan_propagation
from app.run import display_items
from app.run import messages as msg
from app.run.round_context import RoundContext
from app.run.run_state import RunState
from datasets.display import DISPLAY_MAX_SIDE
from datasets.masks import resize_bool

logger = logging.getLogger(__name__)

PROPAGATION_COMMANDS = (msg.PreviewPropagation, msg.ApplyPropagation)
GALLERY_COMMANDS = (msg.DescribeImages, msg.PrepareImages)
PAINT_COMMANDS = PROPAGATION_COMMANDS + (msg.MarkNotThis, msg.PreviewPage) + GALLERY_COMMANDS  # answered while painting


class PropagationCancelled(Exception):
    """Raised from a propagation's progress callback after CancelPropagation; its text is the
    line the user reads."""


def not_this_mask(region: Any, shape: Tuple[int, int], earlier: Optional[np.ndarray]) -> np.ndarray:
    """The "not this" mask to save: 1 (red, wrongly found) where `region` (bool, any size) says,
    at `shape` (the display image's h x w), kept together with an `earlier` correction of that
    shape; int8, 0 elsewhere."""
    found = resize_bool(np.asarray(region, dtype=bool), shape)
    mask = np.where(found, np.int8(1), np.int8(0)).astype(np.int8)
    if earlier is not None and earlier.shape == mask.shape:
        mask = np.maximum(mask, (earlier > 0).astype(np.int8))
    return mask


def propagation_failed(sources: Tuple[str, ...], scope: str, error: Exception) -> msg.PropagationFailed:
    """The answer to a propagation that raised `error` (call it inside the except block): the
    user's mistake as its message, anything else as a bug with its traceback. Logs either."""
    if isinstance(error, user_error_types()):
        logger.warning("propagation refused: %s", error)
        return msg.PropagationFailed(sources, scope, str(error))
    logger.exception("propagation failed")
    return msg.PropagationFailed(sources, scope, f"{type(error).__name__}: {error}", traceback.format_exc(), user_error=False)


class PaintCommands:
    """Answers PAINT_COMMANDS with the run's current model and data."""

    def __init__(self, context: Optional[RoundContext]):
        """`context`: what the answers may use of the run (`app.run.round_context`): its model,
        data, device, config and `validation`, read when a command comes."""
        self.context = context
        self._plan_id = 0
        self._plan: Optional[Tuple[int, Tuple[str, ...], PropagationPlan]] = None  # the last preview's

    def answer(self, command: Any) -> None:
        """Answer one of PAINT_COMMANDS through the run's events."""
        if isinstance(command, PROPAGATION_COMMANDS):
            self.propagate(command)
        elif isinstance(command, msg.MarkNotThis):
            self.mark_not_this(command)
        elif isinstance(command, msg.PreviewPage):
            self.page(command)
        elif isinstance(command, GALLERY_COMMANDS):
            self.gallery(command)
        else:
            raise TypeError(f"not a command answered while painting: {command!r}")

    def propagate(self, command: Any) -> None:
        """Answer PreviewPropagation / ApplyPropagation; errors become PropagationFailed.

        Answers name the sources as the request did (the asker matches its answer by them),
        even when a content search learns from every hand-painted image. A preview's plan is
        kept (`plan_id`): an Apply that names it writes it as reviewed, with no second search.
        Progress goes out as PropagationProgress; CancelPropagation ends either between images.
        """
        ctx = self.context
        train = ctx.data.train
        requested, scope = tuple(command.sources), command.scope
        sources = requested
        if scope == "content" and train.masks is not None:
            # The content is learnt from every image painted red by hand, not only this one.
            sources = tuple(dict.fromkeys(sources + tuple(painted_red_sources(train))))
        ctx.cancel_propagation.clear()
        ctx.set_state(RunState.PROPAGATING)
        try:
            kept = self._kept_plan(command)
            if kept is None:
                negative_store = ctx.validation.negative_store()
                plan = plan_propagation(
                    train,
                    sources,
                    scope,
                    model=ctx.model,
                    device=ctx.device,
                    negative_store=negative_store,
                    locator_config=ctx.config.locator_config(),
                    excluded=tuple(command.excluded),
                    on_progress=self._progress(requested, scope, "finding"),
                )
            else:
                plan = kept.without(command.excluded)
            if isinstance(command, msg.PreviewPropagation):
                self._plan_id += 1
                self._plan = (self._plan_id, requested, plan)
                ctx.emit(
                    msg.PropagationPreview(
                        requested,
                        scope,
                        plan.count,
                        tuple(plan.ranked()),
                        tuple(plan.skipped_hand_painted),
                        display_items.preview_items(train, plan),
                        plan.candidates,
                        plan.threshold,
                        plan_id=self._plan_id,
                        learned_from=tuple(plan.sources) if scope == "content" else (),
                        corrections=len(negative_store.annotated()) if scope == "content" else 0,
                    )
                )
                return
            result = apply_propagation(train, plan, on_progress=self._progress(requested, scope, "writing"))
            self._plan = None  # written: the masks changed, the reviewed plan is spent
            ctx.validation.invalidate()
            ctx.emit(
                msg.PropagationApplied(
                    requested,
                    scope,
                    result.written,
                    len(plan.skipped_hand_painted),
                    tuple(plan.relpaths),
                    result.removed,
                    searched=kept is None,
                )
            )
        except PropagationCancelled as cancelled:
            ctx.emit(msg.PropagationFailed(requested, scope, str(cancelled), cancelled=True))
        except Exception as error:  # noqa: BLE001 -- the round must go on whatever happened
            ctx.emit(propagation_failed(requested, scope, error))

    def _kept_plan(self, command: Any) -> Optional[PropagationPlan]:
        """The reviewed plan an ApplyPropagation names, when it is still the one kept."""
        if not isinstance(command, msg.ApplyPropagation) or self._plan is None:
            return None
        plan_id, requested, plan = self._plan
        if command.plan_id != plan_id or tuple(command.sources) != requested or command.scope != plan.scope:
            return None
        return plan

    def _progress(self, requested: Tuple[str, ...], scope: str, stage: str) -> Callable[[int, int], None]:
        """A progress callback that reports and raises PropagationCancelled after Cancel."""
        ctx = self.context

        def report(done: int, total: int) -> None:
            ctx.emit(msg.PropagationProgress(requested, scope, stage, done, total))
            if ctx.cancel_propagation.is_set():
                if stage == "writing":
                    raise PropagationCancelled(f"Cancelled: {done} of {total} masks were written, the others not.")
                raise PropagationCancelled("Cancelled: nothing was written.")

        return report

    def page(self, command: msg.PreviewPage) -> None:
        """Answer PreviewPage from the kept plan (nothing when it is no longer kept)."""
        if self._plan is None or self._plan[0] != command.plan_id:
            logger.info("preview page of plan %d asked for, which is no longer kept", command.plan_id)
            return
        plan = self._plan[2]
        train = self.context.data.train
        try:
            items = display_items.preview_page(train, plan, command.start)
        except Exception:  # noqa: BLE001 -- a view for the user; never worth losing the round
            logger.exception("preview page failed")
            return
        self.context.emit(msg.PreviewPageItems(command.plan_id, command.start, items, plan.count))

    def mark_not_this(self, command: msg.MarkNotThis) -> None:
        """Save a "not this" correction (red = wrongly found) in the negatives folder."""
        ctx = self.context
        store = ctx.validation.negative_store()
        train = ctx.data.train
        try:
            height, width = train.display_image(train.index_of(command.relpath), max_side=DISPLAY_MAX_SIDE).shape[:2]
            mask = not_this_mask(command.region, (height, width), store.load_array(command.relpath))
            store.save(command.relpath, mask, meta={"source": "not-this"})
        except Exception as error:  # noqa: BLE001 -- the round goes on
            logger.exception("'not this' correction not saved")
            ctx.emit(msg.PropagationFailed((command.relpath,), "content", f"correction not saved: {error}"))

    def gallery(self, command: Any) -> None:
        """Answer DescribeImages / PrepareImages; a failure only logs (the round goes on)."""
        ctx = self.context
        train = ctx.data.train
        try:
            if isinstance(command, msg.DescribeImages):
                ctx.emit(display_items.describe_images(ctx.model, train, device=ctx.device))
            else:
                ctx.emit(
                    display_items.prepare_images(
                        ctx.model,
                        train,
                        command.relpaths,
                        device=ctx.device,
                        saliency_method=ctx.config.saliency_method,
                    )
                )
        except Exception:  # noqa: BLE001 -- a view for the user; never worth losing the round
            logger.exception("gallery request failed")
