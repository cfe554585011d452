"""What a feedback round and the commands answered while painting may use of the run.

The trainer hands `FeedbackRound` and `PaintCommands` this narrow, explicit view of the run
instead of itself: the model and data, the settings, the extra validation, and the few ways to
speak (`emit`, `set_state`), to listen (`wait`) and to keep a committed model (`save_checkpoint`).
Nothing here reaches into the trainer, so the round can be read (and tested) on its own.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Callable, Tuple

import torch

from app.engine.config import FinetuneConfig, TrainConfig
from app.run.extra_validation import ExtraValidation
from app.run.run_state import RunState


@dataclass(frozen=True)
class RoundContext:
    model: torch.nn.Module  # the run's model; a committed round loads the candidate into it in place
    data: Any  # the run's splits (`.train` with its masks, `.val`)
    device: torch.device
    input_size: int  # the model's square input side
    config: TrainConfig  # the run's settings (selection, saliency method, seed, head scale, ...)
    finetune_config: FinetuneConfig
    guidance: str  # the rounds' guidance loss (TrainConfig.round_guidance)
    lam: float  # its weight (TrainConfig.round_lambda)
    val_loader: Any
    test_loader: Any  # the shortcut-free test folder's loader, or None
    validation: ExtraValidation  # the shortcut-broken validation and the "not this" corrections
    session: Any  # app.run.session.Session, or None for a run without one
    emit: Callable[[Any], None]  # an event to the consumer
    set_state: Callable[[RunState], None]  # what the run is doing now (emits StateChanged)
    wait: Callable[[Tuple[type, ...]], Any]  # the next command of these types; raises RunStopped
    save_checkpoint: Callable[[], None]  # write the run's checkpoint (after a commit)
    stopping: Callable[[], bool]  # True once the run is being stopped
    stop_round: threading.Event  # StopRound: end the fine-tune steps now
    cancel_propagation: threading.Event  # CancelPropagation: end the propagation under way

    def stopped_or_round_ended(self) -> bool:
        """Polled by the fine-tune steps: the run stops, or the user ended the round."""
        return self.stopping() or self.stop_round.is_set()
