"""What `train` prints while it runs: a tqdm bar per epoch and one summary line per epoch on
stderr, and each trust warning (`app.engine.trust_checks`) once, when it first holds."""

from __future__ import annotations

import sys
from typing import Any, Callable, Dict, Optional

from tqdm import tqdm

from app.engine.config import TrainConfig
from app.engine.trust_checks import DataSizes, trust_warnings
from app.run import messages as msg


def progress_printer(config: Optional[TrainConfig] = None) -> Callable[[Any, Any], None]:
    """(trainer, event) -> None: a tqdm bar per epoch and one summary line per epoch, on stderr,
    and each trust warning (`app.engine.trust_checks`) once, when it first holds."""

    state: Dict[str, Any] = {"bar": None, "sizes": None, "epochs": [], "warned": set()}

    def warn(event: Any) -> None:
        state["epochs"].append({"epoch": event.epoch, "train": event.train, "val": event.val})
        if state["sizes"] is None:
            return
        for warning in trust_warnings(state["epochs"], state["sizes"]):
            if warning.code not in state["warned"]:
                state["warned"].add(warning.code)
                print(f"warning: {warning.title}: {warning.detail}. {warning.advice}", file=sys.stderr)

    def close_bar() -> None:
        if state["bar"] is not None:
            state["bar"].close()
            state["bar"] = None

    def consume(trainer: Any, event: Any) -> None:
        if isinstance(event, msg.RunStarted):
            print(
                f"device: {event.device}; {event.n_train} training / {event.n_val} validation images; "
                f"classes: {', '.join(event.classes)}",
                file=sys.stderr,
            )
            for relpath, reason in event.skipped:
                print(f"skipped {relpath}: {reason}", file=sys.stderr)
            if config is not None:
                state["sizes"] = DataSizes(
                    event.n_train, event.n_val, len(event.classes), config.batch_size, config.model, tuple(event.class_counts)
                )
        elif isinstance(event, msg.BatchFinished):
            if state["bar"] is None:
                state["bar"] = tqdm(
                    total=event.batches,
                    desc=f"epoch {event.epoch}",
                    unit="batch",
                    leave=False,
                    file=sys.stderr,
                    disable=not sys.stderr.isatty(),
                )
            state["bar"].update(1)
            state["bar"].set_postfix(loss=f"{event.loss:.3f}", acc=f"{event.accuracy:.2f}")
        elif isinstance(event, msg.EpochFinished):
            close_bar()
            print(
                f"epoch {event.epoch}/{event.epochs}: train loss {event.train['loss']:.4f} "
                f"acc {event.train['accuracy']:.3f} | val loss {event.val['loss']:.4f} "
                f"acc {event.val['accuracy']:.3f} | {event.seconds:.1f}s",
                file=sys.stderr,
            )
            warn(event)
        elif isinstance(event, (msg.TrainingFinished, msg.TrainingFailed)):
            close_bar()

    return consume
