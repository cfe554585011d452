"""What a session found, gathered from its folder: the facts a report shows, no drawing.

Read from `session.json` (data folders, settings), `checkpoint.pt` (model, per-epoch history),
`history.jsonl` (one record per feedback round), `masks/` (what was painted, propagated,
imported) and `rounds/` (each round's before/after panels, `app.run.round_strips`). With
`with_model`, the final model is also run over the validation split for its confusion matrix.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from app.engine.checkpoint import Checkpoint, load_checkpoint
from app.errors import CheckpointError
from app.report.confusion import ConfusionFacts, confusion_on_validation
from app.run.round_strips import PROPAGATED, load_round_strip, mask_sources
from app.run.session import Session

logger = logging.getLogger(__name__)


@dataclass
class RoundFacts:
    """One feedback round of the session's history."""

    number: int
    epoch: int
    decision: str  # commit, reject, cancelled, skipped, stopped
    painted: List[str]  # relpaths shown and painted in the round
    propagated: int  # masks propagated from the round's painted images (as the masks are now)
    masks_total: int  # masks in the session after the round
    report: Optional[Dict[str, Any]]  # FinetuneReport.to_dict(), None without a fine-tune
    time: str
    panels: List[Dict[str, Any]] = field(default_factory=list)  # round_strips.load_round_strip
    masks_at_finetune: Optional[Dict[str, int]] = None  # masks by source the round trained on (None: not recorded)


@dataclass
class SessionFacts:
    folder: Path
    created: str
    train_dir: str
    val_dir: Optional[str]
    test_dir: Optional[str]
    train_config: Dict[str, Any]
    finetune_config: Dict[str, Any]
    model_name: Optional[str]
    classes: List[str]
    input_size: Optional[int]
    epochs_done: int
    epoch_history: List[Dict[str, Any]]
    mask_sources: Dict[str, int]  # painted / propagated / imported -> masks
    rounds: List[RoundFacts]
    confusion: Optional[ConfusionFacts] = None
    class_counts: Dict[str, int] = field(default_factory=dict)  # training images per class
    problems: List[str] = field(default_factory=list)  # what could not be read, for the report


def _propagated_from(session: Session) -> Dict[str, List[str]]:
    """Propagated mask -> the sources recorded in its meta."""
    sources: Dict[str, List[str]] = {}
    for relpath in session.masks.annotated():
        meta = session.masks.meta(relpath)
        if meta.get("source") == PROPAGATED:
            sources[relpath] = [s for s in meta.get("from", "").split("\n") if s]
    return sources


def gather(folder: str | Path, with_model: bool = True, device_name: str = "cpu") -> SessionFacts:
    """The facts of the session in `folder` (UserError when it is not a session)."""
    session = Session.open(folder)
    problems: List[str] = []
    checkpoint: Optional[Checkpoint] = None
    if session.checkpoint_path.is_file():
        try:
            checkpoint = load_checkpoint(session.checkpoint_path)
        except CheckpointError as error:
            problems.append(f"the checkpoint cannot be read: {error}")
    else:
        problems.append("the session has no checkpoint yet (no epoch finished)")
    counts, propagated_from = mask_sources(session.masks), _propagated_from(session)
    rounds = []
    for record in session.history():
        painted = [str(r) for r in record.get("images") or []]
        wanted = set(painted)
        number = int(record.get("round", len(rounds) + 1))
        panels, masks_at_finetune = load_round_strip(session.folder, number)
        rounds.append(
            RoundFacts(
                number=number,
                epoch=int(record.get("epoch", 0)),
                decision=str(record.get("decision", "?")),
                painted=painted,
                propagated=sum(1 for froms in propagated_from.values() if wanted.intersection(froms)),
                masks_total=int(record.get("n_annotated_total", 0)),
                report=record.get("report"),
                time=str(record.get("time", "")),
                panels=panels,
                masks_at_finetune=masks_at_finetune,
            )
        )
    facts = SessionFacts(
        folder=session.folder,
        created=session.created,
        train_dir=session.train_dir,
        val_dir=session.val_dir,
        test_dir=session.test_dir,
        train_config=dataclasses.asdict(session.train_config),
        finetune_config=dataclasses.asdict(session.finetune_config),
        model_name=checkpoint.model_name if checkpoint else session.train_config.model,
        classes=list(checkpoint.classes) if checkpoint else [],
        input_size=checkpoint.input_size if checkpoint else None,
        epochs_done=int(checkpoint.epoch) if checkpoint else 0,
        epoch_history=list(checkpoint.history) if checkpoint else [],
        mask_sources=counts,
        rounds=rounds,
        problems=problems,
    )
    if with_model and checkpoint is not None:
        try:
            facts.confusion, facts.class_counts = confusion_on_validation(session, checkpoint, device_name)
        except Exception as error:  # noqa: BLE001 -- the rest of the report is still worth having
            logger.warning("no confusion matrix: %s", error)
            problems.append(f"no confusion matrix: {error}")
    return facts
