"""The main window's session lifecycle and event bookkeeping, without a display.

Real session folders under tmp_path (the controller creates, resumes and removes them); the
form's values and the trainer's events are the plain objects the window would pass.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Optional

import pytest

from app.engine.config import FinetuneConfig, TrainConfig
from app.engine.finetune_report import STOP_GUIDANCE, FinetuneReport
from app.engine.trust_checks import DataSizes
from app.errors import UserError
from app.run import messages as msg
from app.run.run_state import RunState
from ui.main_window.round_rules import paint_cancelled, paint_done, round_can_open
from ui.main_window.run_controller import (
    AskMoreEpochs,
    Note,
    PrepareDemo,
    RefuseTrain,
    RunController,
    StartRun,
    more_epochs,
    same_folder,
    shown_state,
)

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Values:
    """What ui.main_window.settings_panel.SettingsPanel.read() gives Train."""

    train_dir: Optional[str]
    val_dir: Optional[str]
    config: TrainConfig
    test_dir: Optional[str] = None


@pytest.fixture
def data(tmp_path):
    folder = tmp_path / "data"
    for name in ("a", "b"):
        (folder / name).mkdir(parents=True)
    return folder


@pytest.fixture
def controller(tmp_path):
    return RunController(sessions_root=str(tmp_path / "sessions"))


def started(controller, data, config=TrainConfig(epochs=2)):
    """A Train that made its session and its trainer."""
    session, fresh = controller.session_for_run(str(data), None, config, FinetuneConfig())
    controller.run_started(session, config)
    return session, fresh


def epoch(number, epochs=2, val_loss=1.0):
    return msg.EpochFinished(number, epochs, {"loss": 1.0, "accuracy": 0.5}, {"loss": val_loss, "accuracy": 0.5}, 1.5)


def test_the_controller_imports_no_tkinter():
    code = "import sys, ui.main_window.run_controller, ui.main_window.demo_preparation; print('tkinter' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ----------------------------------------------------------------------------- what Train does
def test_without_a_session_train_starts_one_or_makes_the_demo_data_first(controller, data):
    config = TrainConfig(epochs=3)
    assert controller.plan_train(Values(None, None, config)) == PrepareDemo()
    assert controller.plan_train(Values(str(data), None, config)) == StartRun(str(data), None, config)


def test_stop_then_train_continues_the_same_session(controller, data, tmp_path):
    first, fresh = started(controller, data)
    assert fresh and controller.fresh_session and controller.resume_session is first
    assert first.folder.parent == tmp_path / "sessions"
    controller.on_epoch(epoch(1))  # stopped after one epoch of two
    plan = controller.plan_train(Values(str(data), None, TrainConfig(epochs=2)))
    assert plan == StartRun(str(data), None, TrainConfig(epochs=2))
    second, fresh = controller.session_for_run(plan.train_dir, plan.val_dir, TrainConfig(epochs=4), FinetuneConfig())
    assert second is first and not fresh
    assert controller.epochs_done == 1  # a resume keeps the count
    stored = json.loads((first.folder / "session.json").read_text())
    assert stored["train_config"]["epochs"] == 4  # the form's settings are the session's now
    assert len(list((tmp_path / "sessions").iterdir())) == 1


def test_the_test_folder_goes_with_the_run_and_may_change_on_resume(controller, data, tmp_path):
    test = tmp_path / "test"
    test.mkdir()
    plan = controller.plan_train(Values(str(data), None, TrainConfig(epochs=2), str(test)))
    assert plan == StartRun(str(data), None, TrainConfig(epochs=2), str(test))
    session, _ = controller.session_for_run(plan.train_dir, plan.val_dir, plan.config, FinetuneConfig(), plan.test_dir)
    controller.run_started(session, plan.config)
    assert session.run_paths().test_dir == str(test.resolve())
    controller.on_epoch(epoch(1))
    # the test folder only measures: another one (or none) is not other data, the resume goes on
    plan = controller.plan_train(Values(str(data), None, TrainConfig(epochs=2)))
    assert isinstance(plan, StartRun)
    again, fresh = controller.session_for_run(plan.train_dir, plan.val_dir, plan.config, FinetuneConfig(), plan.test_dir)
    assert again is session and not fresh and again.run_paths().test_dir is None


def test_a_resumed_session_refuses_other_folders_but_not_another_spelling(controller, data, tmp_path, monkeypatch):
    started(controller, data)
    other = tmp_path / "other"
    other.mkdir()
    plan = controller.plan_train(Values(str(other), None, TrainConfig(epochs=5)))
    assert isinstance(plan, RefuseTrain) and plan.title == "The session uses other data"
    assert plan.message.startswith(f"This session trains on {data.resolve()} (validation: held out from it).")
    plan = controller.plan_train(Values(str(data), str(other), TrainConfig(epochs=5)))
    assert isinstance(plan, RefuseTrain)  # a validation folder the session did not have
    monkeypatch.chdir(tmp_path)
    assert isinstance(controller.plan_train(Values("data/", None, TrainConfig(epochs=5))), StartRun)
    assert same_folder(None, "") and not same_folder(None, str(data))


def test_another_model_is_refused_once_the_session_has_a_checkpoint(controller, data):
    started(controller, data, TrainConfig(model="small_cnn", epochs=2))
    other_model = Values(str(data), None, TrainConfig(model="resnet18", epochs=2))
    assert isinstance(controller.plan_train(other_model), StartRun)  # nothing trained yet: it may change
    controller.on_epoch(epoch(1))
    plan = controller.plan_train(other_model)
    assert plan.title == "The session uses another model"
    assert plan.message.startswith("This session trains small_cnn; its checkpoint cannot become resnet18.")


@pytest.mark.parametrize("done, suggested", [(2, 2), (6, 6), (50, 20)])
def test_epochs_used_up_asks_for_more_as_many_again_within_reason(controller, data, done, suggested):
    started(controller, data, TrainConfig(epochs=done))
    for number in range(1, done + 1):
        controller.on_epoch(epoch(number, done))
    assert controller.plan_train(Values(str(data), None, TrainConfig(epochs=done))) == AskMoreEpochs(done, suggested)
    total, note = more_epochs(done, 3)
    assert total == done + 3
    assert note == Note(f"Adding 3 epochs: epochs {done + 1}-{done + 3} of this session")
    assert isinstance(controller.plan_train(Values(str(data), None, TrainConfig(epochs=total))), StartRun)
    assert more_epochs(2, 1)[1].text == "Adding 1 epoch: epochs 3-3 of this session"


def test_a_failed_train_removes_only_the_empty_folder_it_made(controller, data, tmp_path):
    session, _ = started(controller, data)
    assert controller.discard_fresh_session(session) is True
    assert not session.folder.exists()
    assert controller.session is None and controller.resume_session is None
    assert controller.session_text() == "New session on Train"
    # a session with an epoch done is never discarded, even when the run fails later
    session, _ = started(controller, data)
    controller.on_epoch(epoch(1))
    assert controller.discard_fresh_session(session) is False
    assert session.folder.is_dir() and controller.resume_session is session
    # nor is one that was opened rather than made by this Train
    opened = RunController(sessions_root=str(tmp_path / "sessions"))
    opened.open_session(str(session.folder))
    assert opened.discard_fresh_session(opened.session) is False and session.folder.is_dir()


def test_open_new_session_and_the_session_line(controller, data, tmp_path):
    session, _ = started(controller, data)
    controller.on_epoch(epoch(1))
    assert (
        controller.session_text() == f"{session.folder}\n(Train continues this session, 1 epoch done; New session starts another)"
    )
    controller.paint_queue.append("a/1.png")
    controller.forget_session()
    assert (controller.session, controller.resume_session, controller.epochs_done) == (None, None, 0)
    assert controller.paint_queue == [] and controller.epoch_records == [] and controller.sizes is None
    opened, epochs, rounds = controller.open_session(str(session.folder))
    assert opened.folder == session.folder and controller.resume_session is opened
    assert (epochs, rounds) == ([], []) and not controller.fresh_session
    assert controller.session_text().endswith("(Train continues this session; New session starts another)")
    assert controller.opened_note(opened, rounds) == Note(
        f"Opened session {session.folder}: 0 epochs done, 0 feedback rounds, 0 masks"
    )
    controller.epochs_done = 1  # "1 epochs done, 1 feedback rounds" read wrong
    assert controller.opened_note(opened, [{"round": 1}]).text.endswith(": 1 epoch done, 1 feedback round, 0 masks")
    controller.epochs_done = 0
    with pytest.raises(UserError, match="is not a session folder"):
        controller.open_session(str(tmp_path))
    assert controller.resume_session is opened  # a failed open changes nothing


# ----------------------------------------------------------------------------- trainer events
def test_run_started_notes_the_sizes_and_lists_skipped_images_up_to_twenty(controller):
    controller.run_config = TrainConfig(model="resnet18", batch_size=16)
    skipped = tuple((f"a/{i}.png", "truncated") for i in range(23))
    event = msg.RunStarted("CPU", ("a", "b"), 100, 20, 3, 5, 7, skipped=skipped, class_counts=(60, 40))
    notes = controller.on_run_started(event)
    assert controller.sizes == DataSizes(100, 20, 2, 16, "resnet18", (60, 40))
    assert controller.epochs == 5
    assert notes[0] == Note("Training on CPU: 100 training and 20 validation images, 2 classes, epochs 3-5")
    assert notes[1] == Note("23 images were skipped (unreadable):", "warning")
    assert notes[2] == Note("  a/0.png: truncated", "warning") and len(notes) == 2 + 20 + 1
    assert notes[-1] == Note("  ... and 3 more", "warning")
    one = controller.on_run_started(msg.RunStarted("CPU", ("a",), 1, 1, 1, 1, 1, skipped=(("x.png", "bad"),)))
    assert one[1].text == "1 image was skipped (unreadable):"
    fallback = RunController(default_config=TrainConfig(model="small_cnn", batch_size=8))
    fallback.on_run_started(event)  # no run config yet: the form's defaults
    assert (fallback.sizes.batch_size, fallback.sizes.model) == (8, "small_cnn")


def test_epochs_count_once_and_their_records_replace_a_repeated_epoch(controller):
    note = controller.on_epoch(epoch(1, 3, val_loss=2.0))
    assert note == Note("Epoch 1/3: train loss 1.0000, acc 50.0%; val loss 2.0000, acc 50.0% (1.5 s)")
    measured = msg.EpochFinished(
        2, 3, {"loss": 1.0, "accuracy": 0.5}, {"loss": 2.0, "accuracy": 0.9, "broken_accuracy": 0.4, "test_accuracy": 0.35}, 1.5
    )
    assert controller.on_epoch(measured).text.endswith("acc 90.0%; shortcut-broken acc 40.0%; test acc 35.0% (1.5 s)")
    controller.on_epoch(epoch(1, 3, val_loss=1.5))  # a resumed run repeats the epoch
    controller.on_epoch(epoch(2, 3))
    assert controller.epochs_done == 2
    assert [(r["epoch"], r["val"]["loss"]) for r in controller.epoch_records] == [(1, 1.5), (2, 1.0)]


def test_trust_warnings_are_logged_when_they_change_not_every_epoch(controller):
    assert controller.check_trust() == ((), [])  # the sizes come with RunStarted
    controller.sizes = DataSizes(26, 6, 2, 64, "small_cnn", (13, 13))
    controller.on_epoch(epoch(1))
    warnings, notes = controller.check_trust()
    codes = [w.code for w in warnings]
    assert "few_images" in codes and "few_steps" in codes
    assert len(notes) == len(warnings)
    assert all(n.text.startswith(f"Warning: {w.title}: {w.detail}.") for n, w in zip(notes, warnings))
    assert all(n.level == "warning" for n in notes)
    assert controller.trust_note().startswith("Predictions and confidences may mean nothing: ")
    controller.on_epoch(epoch(2))
    again, notes = controller.check_trust()
    assert [w.code for w in again] == codes and notes == []  # unchanged: the banner stays, no new lines
    assert RunController().trust_note() == ""


def _report(**overrides):
    fields = dict(
        stop_reason=STOP_GUIDANCE,
        steps=12,
        n_annotated=2,
        val_loss_before=1.0,
        val_loss_after=0.75,
        val_accuracy_before=0.5,
        val_accuracy_after=0.625,
        guidance_before=2.0,
        guidance_after=1.0,
        red_share_before=0.4,
        red_share_after=0.1,
        green_share_before=0.2,
        green_share_after=0.3,
        seconds=3.0,
    )
    return FinetuneReport(**{**fields, **overrides})


def test_a_decided_round_carries_the_fine_tunes_numbers_and_a_skipped_one_nan(controller):
    report = _report()
    note = controller.on_finetune_done(msg.FinetuneDone(1, report, ()))
    assert note.text.startswith(f"Fine-tune round 1 done after 12 steps ({report.stop_text}): ")
    assert note.text.endswith("val acc 50.0% -> 62.5%, saliency on red 40.0% -> 10.0%")
    mark, note = controller.on_round_decided(msg.RoundDecided(1, 2, committed=True, finetuned=True))
    assert (mark.round, mark.epoch, mark.committed, mark.val_loss, mark.val_accuracy) == (1, 2, True, 0.75, 0.625)
    assert note.text == "Round 1 (after epoch 2) committed: training continues with the fine-tuned weights"
    mark, note = controller.on_round_decided(msg.RoundDecided(2, 4, committed=False, finetuned=True))
    assert math.isnan(mark.val_loss)  # the report belonged to round 1: used once
    assert note.text == "Round 2 (after epoch 4) rejected: training continues with the weights from before the round"
    controller.on_finetune_done(msg.FinetuneDone(3, report, ()))
    mark, note = controller.on_round_decided(msg.RoundDecided(3, 6, committed=False, finetuned=False))
    assert math.isnan(mark.val_accuracy) and note.text == "Round 3 (after epoch 6) skipped"


def test_the_end_of_a_run(controller):
    state, note = controller.on_finished(msg.TrainingFinished(3, stopped=True))
    assert state is RunState.STOPPED and note.text == "Stopped after epoch 3; session saved"
    assert controller.finished.epoch == 3
    state, note = controller.on_finished(msg.TrainingFinished(0, stopped=True))  # Stop in epoch 1
    assert note.text == "Stopped before epoch 1 ended; session saved (Train runs epoch 1 again)"
    state, note = controller.on_finished(msg.TrainingFinished(6, stopped=False))
    assert state is RunState.FINISHED and note.text.startswith("Training finished: 6 epochs. Train adds more epochs")
    notes, title = controller.on_failed(msg.TrainingFailed("no classes", user_error=True))
    assert title == "Cannot train" and notes == [Note("Training failed: no classes", "error")]
    notes, title = controller.on_failed(msg.TrainingFailed("boom", "Traceback ..."))
    assert title == "Training failed" and notes[1] == Note("Traceback ...", "error")
    assert controller.last_failure.message == "boom"


def test_after_stop_only_an_ended_state_replaces_stopping():
    assert shown_state(RunState.STOPPING, RunState.TRAINING) is None
    assert shown_state(RunState.STOPPING, RunState.WAITING_FOR_FEEDBACK) is None
    assert shown_state(RunState.STOPPING, RunState.STOPPED) is RunState.STOPPED
    assert shown_state(RunState.STOPPING, "failed") is RunState.FAILED  # a bare name counts too
    assert shown_state(RunState.TRAINING, "paused") is RunState.PAUSED


# ----------------------------------------------------------------------------- feedback rounds
class Masks:
    def __init__(self, annotated=(), propagated=()):
        self._annotated = list(annotated) + list(propagated)
        self._propagated = set(propagated)

    def annotated(self):
        return list(self._annotated)

    def has(self, relpath):
        return relpath in self._annotated

    def meta(self, relpath):
        return {"source": "propagated"} if relpath in self._propagated else {}


def test_nothing_painted_and_no_earlier_mask_skips_the_fine_tune():
    answer = paint_done((), Masks())
    assert answer.command == msg.SkipFeedback()
    assert answer.note.text == "Nothing painted, so nothing to fine-tune; training resumes"
    assert answer.status == "Nothing painted: nothing to fine-tune. Training resumes."
    # masks from earlier rounds still guide a fine-tune
    assert paint_done((), Masks(["a/1.png"])).command == msg.StartFinetune(())
    answer = paint_done(["a/1.png", "b/2.png"], Masks(["a/1.png", "b/2.png"]))
    assert answer.command == msg.StartFinetune(("a/1.png", "b/2.png")) and answer.status == ""
    assert answer.note.text == "Painted 2 images; fine-tuning..."


def test_painted_counts_only_what_was_painted_and_carries_the_shorter_round():
    """Issue 21: "Painted 6 images" when 3 were painted and 3 more got a propagated mask."""
    round_images = ["a/1.png", "a/2.png", "a/3.png", "b/4.png", "b/5.png", "b/6.png"]
    masks = Masks(round_images[:3], propagated=round_images[3:])
    answer = paint_done(round_images, masks, 30)
    assert answer.note.text == (
        "Painted 3 images (3 more of this round's images got a propagated mask); fine-tuning (30 steps at most)..."
    )
    assert answer.command == msg.StartFinetune(tuple(round_images), max_steps=30)
    assert paint_cancelled().command == msg.SkipFeedback()


def test_a_round_window_opens_only_for_a_trainer_still_waiting():
    waiting, stopping = SimpleNamespace(stopping=False), SimpleNamespace(stopping=True)
    assert round_can_open(False, waiting)
    assert not round_can_open(True, waiting) and not round_can_open(False, stopping) and not round_can_open(False, None)


def test_images_chosen_between_rounds_queue_once_and_open_with_the_next_round(controller):
    status, note = controller.queue_paint(["a/1.png", "b/2.png"])
    assert status == "2 images queued: they open in the brush window at the next feedback round"
    assert note.text == "Queued 2 images for painting at the next feedback round"
    status, note = controller.queue_paint(["b/2.png", "c/3.png"])
    assert status.startswith("3 images queued") and controller.paint_queue == ["a/1.png", "b/2.png", "c/3.png"]
    assert controller.take_paint_queue() == ("a/1.png", "b/2.png", "c/3.png")
    assert controller.paint_queue == [] and controller.take_paint_queue() == ()
