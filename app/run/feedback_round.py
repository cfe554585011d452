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
    """The feedback rounds of the trainer that owns it (one object for the run, `run` per round)."""

    def __init__(self, trainer: Any):
        """`trainer`: the `app.run.trainer.Trainer` that owns this (not imported: it imports this
        module). The round reads its model, data, configs and loaders, and speaks through its
        `_emit`, `_set_state` and command inbox; `trainer.rounds` counts the rounds."""
        self.trainer = trainer
        self.paint = PaintCommands(trainer)

    def run(self, epoch: int) -> None:
        """Select, wait for paint, fine-tune, wait for the decision, apply it. Raises RunStopped
        when the run is stopped while it waits."""
        trainer = self.trainer
        trainer.rounds += 1
        round_number = trainer.rounds
        if trainer.data.train.masks is None:
            logger.warning("feedback round skipped: this run has no mask folder")
            return
        trainer._set_state(RunState.SELECTING)
        items = self._items(epoch)
        if not items:
            logger.info("feedback round %d skipped: no unannotated images left", round_number)
            return
        self._emit_reasonability(round_number, epoch)
        trainer._set_state(RunState.WAITING_FOR_FEEDBACK)
        trainer._emit(msg.FeedbackNeeded(round_number, epoch, tuple(items), trainer.config.selection))
        command = self._wait_for_paint()
        if isinstance(command, msg.SkipFeedback):
            self._record(epoch, (), "cancelled", None)
            trainer._emit(msg.RoundDecided(round_number, epoch, committed=False, finetuned=False))
            return
        n_annotated = len(trainer.data.train.masks.annotated())
        if n_annotated == 0:  # Done with nothing painted: a 0-step round would compare nothing
            logger.info("round %d: nothing painted, nothing to fine-tune", round_number)
            self._record(epoch, (), "skipped", None)
            trainer._emit(msg.RoundDecided(round_number, epoch, committed=False, finetuned=False))
            return
        result = self._finetune(round_number, n_annotated, command.max_steps)
        self._decide(round_number, epoch, command.relpaths, result)

    def _items(self, epoch: int) -> List[msg.FeedbackItem]:
        """The images shown for painting, chosen by the run's selection strategy."""
        trainer = self.trainer
        train = trainer.data.train
        # Only hand-painted images are left out: an image with a propagated mask still deserves
        # a look (propagating to "all" would otherwise leave no image for the next round).
        annotated = hand_painted(train.masks) if train.masks is not None else []
        choices = select_images(
            trainer.model,
            train,
            trainer.config.images_per_round,
            trainer.config.selection,
            device=trainer.device,
            seed=trainer.config.seed + epoch,
            exclude=annotated,
            locator_config=trainer.config.locator_config(),
        )
        return display_items.feedback_items(
            trainer.model,
            train,
            [c.index for c in choices],
            [c.reason for c in choices],
            device=trainer.device,
            saliency_method=trainer.config.saliency_method,
        )

    def _wait_for_paint(self) -> Any:
        """Answer paint-time commands until StartFinetune or SkipFeedback, which is returned."""
        trainer = self.trainer
        while True:
            command = trainer._inbox.wait(PAINT_DONE_COMMANDS + PAINT_COMMANDS)
            if not isinstance(command, PAINT_COMMANDS):
                return command
            self.paint.answer(command)
            if isinstance(command, PROPAGATION_COMMANDS):
                trainer._set_state(RunState.WAITING_FOR_FEEDBACK)

    def _finetune(self, round_number: int, n_annotated: int, max_steps: Optional[int] = None) -> FinetuneResult:
        """Fine-tune a candidate on the painted masks, reporting progress and every step.

        `max_steps`: the shorter round the user chose (None: the configured one). StopRound
        (`trainer.stop_round`) ends the steps early; the candidate so far then goes to the chooser
        like any other, while Stop (`trainer.stopping`) ends the run."""
        trainer = self.trainer
        config = dataclasses.replace(trainer.finetune_config, counterexamples=trainer.config.counterexamples)
        if max_steps is not None and 1 <= max_steps < config.max_steps:
            config = dataclasses.replace(config, max_steps=int(max_steps))
        trainer.stop_round.clear()
        trainer._set_state(RunState.FINETUNING)
        trainer._emit(msg.FinetuneStarted(round_number, n_annotated, config.max_steps))

        def on_progress(step: int, max_steps: int, guidance: float, val_loss: float) -> None:
            trainer._emit(msg.FinetuneProgress(round_number, step, max_steps, guidance, val_loss))

        trainer.validation.invalidate()  # the round's paint is saved now
        return finetune_round(
            trainer.model,
            train_data=trainer.data.train,
            val_loader=trainer.val_loader,
            broken=trainer.validation.broken(),
            guidance_name=trainer.finetune_guidance,
            lam=trainer.lam,
            # one switch for the run: the round swaps red regions when the epochs do
            config=config,
            device=trainer.device,
            seed=trainer.config.seed + 1000 * round_number,
            on_progress=on_progress,
            should_stop=lambda: trainer.stopping or trainer.stop_round.is_set(),
            on_step=lambda step, max_steps: trainer._emit(msg.FinetuneStep(round_number, step, max_steps)),
            test_loader=trainer.test_loader,
            head_scale=trainer.config.head_scale,
        )

    def _decide(self, round_number: int, epoch: int, relpaths: Sequence[str], result: FinetuneResult) -> None:
        """Show the candidate (FinetuneDone), wait for Commit or Reject and apply it."""
        trainer = self.trainer
        comparisons = display_items.comparisons(
            trainer.model,
            result,
            trainer.data.train,
            relpaths,
            device=trainer.device,
            saliency_method=trainer.config.saliency_method,
        )
        if trainer.session is not None:  # the report's before/after strip (the "before" model goes)
            save_round_strip(trainer.session.folder, round_number, comparisons, trainer.data.train.masks)
        trainer._set_state(RunState.WAITING_FOR_DECISION)
        trainer._emit(msg.FinetuneDone(round_number, result.report, comparisons))
        try:
            decision = trainer._inbox.wait((msg.Commit, msg.Reject))
        except RunStopped:
            self._record(epoch, relpaths, "stopped", result.report.to_dict())
            raise
        committed = isinstance(decision, msg.Commit)
        problem = weights_problem(result.candidate) if committed else None
        if problem is not None:  # finetune_round falls back to finite weights; never commit others
            logger.error("commit refused: the candidate's weights are broken (%s)", problem)
            committed = False
        if committed:
            commit_candidate(trainer.model, result.candidate)
            trainer._save_checkpoint()
        self._record(epoch, relpaths, "commit" if committed else "reject", result.report.to_dict())
        trainer._emit(msg.RoundDecided(round_number, epoch, committed=committed, finetuned=True))

    def _record(self, epoch: int, relpaths: Sequence[str], decision: str, report: Optional[Dict[str, Any]]) -> None:
        """Append the round to the session's history (nothing without a session)."""
        trainer = self.trainer
        if trainer.session is None:
            return
        masks = trainer.data.train.masks
        trainer.session.append_history(
            {
                "round": trainer.rounds,
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
        trainer = self.trainer
        train = trainer.data.train
        trainer._set_state(RunState.JUDGING)
        try:
            matrix = reasonability_matrix(
                trainer.model,
                train,
                device=trainer.device,
                pool_size=reasonability_pool(trainer.device, trainer.input_size),
                seed=trainer.config.seed + epoch,
                should_stop=lambda: trainer.stopping,
                locator_config=trainer.config.locator_config(),
            )
        except Exception:  # noqa: BLE001 -- a view for the user; never worth losing the round
            logger.exception("reasonability matrix not computed")
            return
        if matrix is None:  # stopped meanwhile
            return
        members = {cell: tuple(relpaths[:REASONABILITY_MEMBERS]) for cell, relpaths in matrix.members.items()}
        matrix = dataclasses.replace(matrix, counts=dict(matrix.counts), members=members)
        trainer._emit(msg.ReasonabilityReady(round_number, epoch, matrix, len(train)))
