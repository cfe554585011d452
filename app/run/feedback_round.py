"""One feedback round, the protocol between the trainer and the user who paints.

Every `feedback_every` epochs the trainer hands over to `FeedbackRound.run(epoch)`:

1. select images (`app.explain.selection`, hand-painted ones left out) and emit
   `ReasonabilityReady` (GRADIA's matrix of the current model) then `FeedbackNeeded`;
2. wait for paint, answering `app.run.paint_commands`' commands meanwhile, until `StartFinetune`
   or `SkipFeedback` (cancelled: the round ends there);
3. fine-tune a candidate on the painted masks (`app.engine.finetune`; nothing painted: skipped),
   with `FinetuneStarted` / `FinetuneProgress` / `FinetuneStep`, then `FinetuneDone` with the
   chooser's before/after panels;
4. wait for `Commit` (the candidate's weights replace the model's, checkpoint saved, unless they
   are broken) or `Reject`, and emit `RoundDecided`.

Every round shown to the user is recorded in the session's history (none without a session)
as "cancelled", "skipped" (nothing painted), "stopped", "commit" or "reject".
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any, Dict, List, Optional, Sequence

import torch

from app.engine.finetune import FinetuneResult, commit_candidate, finetune_round
from app.engine.finite_guard import weights_problem
from app.explain.propagation import hand_painted
from app.explain.reasonability import reasonability_matrix
from app.explain.selection import select_images
from app.run import display_items
from app.run import messages as msg
from app.run.command_inbox import RunStopped
from app.run.paint_commands import PAINT_COMMANDS, PROPAGATION_COMMANDS, PaintCommands
from app.run.round_context import RoundContext
from app.run.round_strips import save_round_strip
from app.run.run_state import RunState

logger = logging.getLogger(__name__)

# The reasonability matrix costs one forward and backward per pooled image before every round,
# which delays the brush window: 128 images of small_cnn take about 1 s on a busy 2-core CPU;
# models at 224 px (resnet18) judge 16 images on a CPU (a few seconds there), 128 on a GPU.
REASONABILITY_POOL = 128
REASONABILITY_POOL_LARGE_CPU = 16
LARGE_INPUT = 128  # input side from which a model counts as large for the pool above
REASONABILITY_MEMBERS = 200  # relpaths sent per cell of the matrix
PAINT_DONE_COMMANDS = (msg.StartFinetune, msg.SkipFeedback)  # what ends the wait for paint


def reasonability_pool(device: torch.device, input_size: int) -> int:
    """How many training images the matrix before a round judges on this device and input size."""
    if device.type == "cpu" and input_size >= LARGE_INPUT:
        return REASONABILITY_POOL_LARGE_CPU
    return REASONABILITY_POOL


class FeedbackRound:
    """The feedback rounds of one run (one object for the run, `run` per round)."""

    def __init__(self, context: RoundContext, rounds_done: int = 0):
        """`context`: what the round may use of the run (`app.run.round_context`); `rounds_done`:
        the rounds of this session before this run (the next one is numbered after them)."""
        self.context = context
        self.rounds = rounds_done
        self.paint = PaintCommands(context)

    def run(self, epoch: int) -> None:
        """Select, wait for paint, fine-tune, wait for the decision, apply it. Raises RunStopped
        when the run is stopped while it waits."""
        ctx = self.context
        self.rounds += 1
        round_number = self.rounds
        if ctx.data.train.masks is None:
            logger.warning("feedback round skipped: this run has no mask folder")
            return
        ctx.set_state(RunState.SELECTING)
        items = self._items(epoch)
        if not items:
            logger.info("feedback round %d skipped: no unannotated images left", round_number)
            return
        self._emit_reasonability(round_number, epoch)
        ctx.set_state(RunState.WAITING_FOR_FEEDBACK)
        ctx.emit(msg.FeedbackNeeded(round_number, epoch, tuple(items), ctx.config.selection))
        command = self._wait_for_paint()
        if isinstance(command, msg.SkipFeedback):
            self._record(epoch, (), "cancelled", None)
            ctx.emit(msg.RoundDecided(round_number, epoch, committed=False, finetuned=False))
            return
        n_annotated = len(ctx.data.train.masks.annotated())
        if n_annotated == 0:  # Done with nothing painted: a 0-step round would compare nothing
            logger.info("round %d: nothing painted, nothing to fine-tune", round_number)
            self._record(epoch, (), "skipped", None)
            ctx.emit(msg.RoundDecided(round_number, epoch, committed=False, finetuned=False))
            return
        result = self._finetune(round_number, n_annotated, command.max_steps)
        self._decide(round_number, epoch, command.relpaths, result)

    def _items(self, epoch: int) -> List[msg.FeedbackItem]:
        """The images shown for painting, chosen by the run's selection strategy."""
        ctx = self.context
        train = ctx.data.train
        # Only hand-painted images are left out: an image with a propagated mask still deserves
        # a look (propagating to "all" would otherwise leave no image for the next round).
        annotated = hand_painted(train.masks) if train.masks is not None else []
        choices = select_images(
            ctx.model,
            train,
            ctx.config.images_per_round,
            ctx.config.selection,
            device=ctx.device,
            seed=ctx.config.seed + epoch,
            exclude=annotated,
            locator_config=ctx.config.locator_config(),
        )
        return display_items.feedback_items(
            ctx.model,
            train,
            [c.index for c in choices],
            [c.reason for c in choices],
            device=ctx.device,
            saliency_method=ctx.config.saliency_method,
        )

    def _wait_for_paint(self) -> Any:
        """Answer paint-time commands until StartFinetune or SkipFeedback, which is returned."""
        ctx = self.context
        while True:
            command = ctx.wait(PAINT_DONE_COMMANDS + PAINT_COMMANDS)
            if not isinstance(command, PAINT_COMMANDS):
                return command
            self.paint.answer(command)
            if isinstance(command, PROPAGATION_COMMANDS):
                ctx.set_state(RunState.WAITING_FOR_FEEDBACK)

    def _finetune(self, round_number: int, n_annotated: int, max_steps: Optional[int] = None) -> FinetuneResult:
        """Fine-tune a candidate on the painted masks, reporting progress and every step.

        `max_steps`: the shorter round the user chose (None: the configured one). StopRound
        (`context.stop_round`) ends the steps early; the candidate so far then goes to the chooser
        like any other, while Stop (`context.stopping`) ends the run."""
        ctx = self.context
        config = dataclasses.replace(ctx.finetune_config, counterexamples=ctx.config.counterexamples)
        if max_steps is not None and 1 <= max_steps < config.max_steps:
            config = dataclasses.replace(config, max_steps=int(max_steps))
        ctx.stop_round.clear()
        ctx.set_state(RunState.FINETUNING)
        ctx.emit(msg.FinetuneStarted(round_number, n_annotated, config.max_steps))

        def on_progress(step: int, max_steps: int, guidance: float, val_loss: float) -> None:
            ctx.emit(msg.FinetuneProgress(round_number, step, max_steps, guidance, val_loss))

        ctx.validation.invalidate()  # the round's paint is saved now
        return finetune_round(
            ctx.model,
            train_data=ctx.data.train,
            val_loader=ctx.val_loader,
            broken=ctx.validation.broken(),
            guidance_name=ctx.guidance,
            lam=ctx.lam,
            # one switch for the run: the round swaps red regions when the epochs do
            config=config,
            device=ctx.device,
            seed=ctx.config.seed + 1000 * round_number,
            on_progress=on_progress,
            should_stop=ctx.stopped_or_round_ended,
            on_step=lambda step, max_steps: ctx.emit(msg.FinetuneStep(round_number, step, max_steps)),
            test_loader=ctx.test_loader,
            head_scale=ctx.config.head_scale,
        )

    def _decide(self, round_number: int, epoch: int, relpaths: Sequence[str], result: FinetuneResult) -> None:
        """Show the candidate (FinetuneDone), wait for Commit or Reject and apply it."""
        ctx = self.context
        comparisons = display_items.comparisons(
            ctx.model,
            result,
            ctx.data.train,
            relpaths,
            device=ctx.device,
            saliency_method=ctx.config.saliency_method,
        )
        if ctx.session is not None:  # the report's before/after strip (the "before" model goes)
            save_round_strip(ctx.session.folder, round_number, comparisons, ctx.data.train.masks)
        ctx.set_state(RunState.WAITING_FOR_DECISION)
        ctx.emit(msg.FinetuneDone(round_number, result.report, comparisons))
        try:
            decision = ctx.wait((msg.Commit, msg.Reject))
        except RunStopped:
            self._record(epoch, relpaths, "stopped", result.report.to_dict())
            raise
        committed = isinstance(decision, msg.Commit)
        problem = weights_problem(result.candidate) if committed else None
        if problem is not None:  # finetune_round falls back to finite weights; never commit others
            logger.error("commit refused: the candidate's weights are broken (%s)", problem)
            committed = False
        if committed:
            commit_candidate(ctx.model, result.candidate)
            ctx.save_checkpoint()
        self._record(epoch, relpaths, "commit" if committed else "reject", result.report.to_dict())
        ctx.emit(msg.RoundDecided(round_number, epoch, committed=committed, finetuned=True))

    def _record(self, epoch: int, relpaths: Sequence[str], decision: str, report: Optional[Dict[str, Any]]) -> None:
        """Append the round to the session's history (nothing without a session)."""
        ctx = self.context
        if ctx.session is None:
            return
        masks = ctx.data.train.masks
        ctx.session.append_history(
            {
                "round": self.rounds,
                "epoch": epoch,
                "images": list(relpaths),
                "decision": decision,
                "n_annotated_total": len(masks.annotated()) if masks else 0,
                "report": report,
                "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
            }
        )

    def _emit_reasonability(self, round_number: int, epoch: int) -> None:
        """Emit ReasonabilityReady for the current model; a failure only logs (the round goes on)."""
        ctx = self.context
        train = ctx.data.train
        ctx.set_state(RunState.JUDGING)
        try:
            matrix = reasonability_matrix(
                ctx.model,
                train,
                device=ctx.device,
                pool_size=reasonability_pool(ctx.device, ctx.input_size),
                seed=ctx.config.seed + epoch,
                should_stop=ctx.stopping,
                locator_config=ctx.config.locator_config(),
            )
        except Exception:  # noqa: BLE001 -- a view for the user; never worth losing the round
            logger.exception("reasonability matrix not computed")
            return
        if matrix is None:  # stopped meanwhile
            return
        members = {cell: tuple(relpaths[:REASONABILITY_MEMBERS]) for cell, relpaths in matrix.members.items()}
        matrix = dataclasses.replace(matrix, counts=dict(matrix.counts), members=members)
        ctx.emit(msg.ReasonabilityReady(round_number, epoch, matrix, len(train)))
