"""The trainer thread: events, feedback rounds with commit/reject, pause/stop, failures."""

import queue
import threading

import numpy as np
import torch

from app.engine.config import FinetuneConfig, RunPaths, TrainConfig
from app.run import messages as msg
from app.run.session import Session
from app.run.trainer import Trainer
from datasets import MaskStore

FAST_FINETUNE = FinetuneConfig(max_steps=4, check_every=2, val_loss_rise=100.0, guidance_drop=1.0, stop_rule="thesis")


def _config(**changes):
    base = TrainConfig(
        model="small_cnn",
        epochs=2,
        batch_size=8,
        lr=1e-3,
        guidance="punisher",
        lam=1.0,
        feedback_every=1,
        images_per_round=2,
        selection="entropy",
    )
    return base.replace(**changes)


class Script:
    """Drives a trainer like the app would: paints what it is shown, then decides."""

    def __init__(self, trainer_factory, decision, masks_dir):
        self.events = []
        self.decision = decision
        self.masks = MaskStore(masks_dir)
        self.snapshots = {}
        self.trainer = trainer_factory(self.on_event)

    def on_event(self, event):
        self.events.append(event)
        if isinstance(event, msg.FeedbackNeeded):
            painted = []
            for item in event.items:
                height, width = item.image.shape[:2]
                mask = np.zeros((height, width), dtype=np.int8)
                mask[: height // 3, : width // 3] = 1
                self.masks.save(item.relpath, mask)
                painted.append(item.relpath)
            self.snapshots["before"] = {k: v.clone() for k, v in self.trainer.model.state_dict().items()}
            self.trainer.submit(msg.StartFinetune(tuple(painted)))
        elif isinstance(event, msg.FinetuneDone):
            self.trainer.submit(self.decision)
        elif isinstance(event, msg.RoundDecided):
            self.snapshots["after"] = {k: v.clone() for k, v in self.trainer.model.state_dict().items()}

    def of(self, kind):
        return [e for e in self.events if isinstance(e, kind)]


def _run_script(image_folder, tmp_path, decision, **config_changes):
    session = Session.create(tmp_path / "session", image_folder, None, _config(**config_changes), FAST_FINETUNE)
    script = Script(
        lambda emit: Trainer(session.train_config, session.finetune_config, session.run_paths(), emit=emit, session=session),
        decision,
        session.masks_dir,
    )
    script.trainer.run()  # in this thread: deterministic for the test
    return script, session


def test_feedback_round_commit_changes_weights_and_is_recorded(image_folder, tmp_path):
    script, session = _run_script(image_folder, tmp_path, msg.Commit())
    assert len(script.of(msg.RunStarted)) == 1
    assert [e.epoch for e in script.of(msg.EpochFinished)] == [1, 2]
    assert script.of(msg.BatchFinished)[0].batches == script.of(msg.RunStarted)[0].batches_per_epoch
    feedback = script.of(msg.FeedbackNeeded)
    assert len(feedback) == 1 and len(feedback[0].items) == 2  # after epoch 1, not after the last
    item = feedback[0].items[0]
    assert item.image.dtype == np.uint8 and item.image.shape[2] == 3
    assert item.saliency.shape == (32, 32) and 0.0 <= item.saliency.min() and item.saliency.max() <= 1.0
    done = script.of(msg.FinetuneDone)[0]
    assert done.report.n_annotated == 2 and len(done.comparisons) == 2
    decided = script.of(msg.RoundDecided)[0]
    assert decided.committed and decided.finetuned
    changed = [
        k for k in script.snapshots["before"] if not torch.equal(script.snapshots["before"][k], script.snapshots["after"][k])
    ]
    assert changed, "commit must swap the fine-tuned weights in"
    finished = script.of(msg.TrainingFinished)[0]
    assert finished.epoch == 2 and not finished.stopped
    history = session.history()
    assert len(history) == 1 and history[0]["decision"] == "commit"
    assert sorted(history[0]["images"]) == sorted(i.relpath for i in feedback[0].items)
    assert len(session.epoch_history()) == 2  # the checkpoint carries the per-epoch metrics


def test_feedback_round_reject_leaves_weights_identical(image_folder, tmp_path):
    script, session = _run_script(image_folder, tmp_path, msg.Reject())
    decided = script.of(msg.RoundDecided)[0]
    assert not decided.committed
    for name, tensor in script.snapshots["before"].items():
        assert torch.equal(tensor, script.snapshots["after"][name]), name
    assert session.history()[0]["decision"] == "reject"
    # The painted masks stay and keep guiding the next epoch: the 2 painted images are drawn 10x
    # as often as the other 18 (app/engine/oversampling.py), about 10 of the epoch's 20 draws.
    first_epoch, last_epoch = script.of(msg.EpochFinished)
    assert first_epoch.train["n_annotated"] == 0
    assert last_epoch.train["n_annotated"] >= 5


def test_cancelled_brush_window_resumes_unchanged(image_folder, tmp_path):
    events = []
    session = Session.create(tmp_path / "session", image_folder, None, _config(), FAST_FINETUNE)
    trainer = Trainer(session.train_config, session.finetune_config, session.run_paths(), emit=events.append, session=session)

    def emit(event):
        events.append(event)
        if isinstance(event, msg.FeedbackNeeded):
            trainer.submit(msg.SkipFeedback())

    trainer._emit = emit
    trainer.run()
    decided = [e for e in events if isinstance(e, msg.RoundDecided)]
    assert decided and not decided[0].finetuned and not decided[0].committed
    assert not any(isinstance(e, msg.FinetuneDone) for e in events)
    assert session.history()[0]["decision"] == "cancelled"


def test_stop_while_paused_ends_cleanly_and_saves(image_folder, tmp_path):
    events: "queue.Queue" = queue.Queue()
    out = tmp_path / "run" / "model.pt"
    trainer = Trainer(
        _config(epochs=50, feedback_every=0),
        FinetuneConfig(),
        RunPaths(str(image_folder), checkpoint_out=str(out)),
        emit=events.put,
    )
    first_epoch_done = threading.Event()
    trainer.pause()
    thread = trainer.start()
    # Paused before the first batch: no batch event may arrive.
    seen = []
    while True:
        event = events.get(timeout=60)
        seen.append(event)
        if isinstance(event, msg.StateChanged) and event.state == "paused":
            break
    assert not any(isinstance(e, msg.BatchFinished) for e in seen)
    trainer.resume()
    while not first_epoch_done.is_set():
        event = events.get(timeout=60)
        if isinstance(event, msg.EpochFinished):
            first_epoch_done.set()
    trainer.stop()
    thread.join(timeout=60)
    assert not thread.is_alive()
    rest = []
    while not events.empty():
        rest.append(events.get())
    finished = [e for e in rest if isinstance(e, msg.TrainingFinished)]
    assert finished and finished[0].stopped
    assert out.is_file()


def test_bad_data_is_reported_as_user_error(tmp_path):
    events = []
    (tmp_path / "empty").mkdir()
    Trainer(_config(), FinetuneConfig(), RunPaths(str(tmp_path / "empty")), emit=events.append).run()
    failed = [e for e in events if isinstance(e, msg.TrainingFailed)]
    assert len(failed) == 1 and failed[0].user_error
    assert "empty" in failed[0].message or "no class" in failed[0].message


def test_a_test_folder_is_measured_every_epoch_and_a_wrong_one_refused_before_the_model(image_folder, tmp_path, monkeypatch):
    from conftest import make_image_folder

    test = make_image_folder(tmp_path / "test", seed=5)
    events = []
    Trainer(_config(epochs=2), FinetuneConfig(), RunPaths(str(image_folder), test_dir=str(test)), emit=events.append).run()
    epochs = [e for e in events if isinstance(e, msg.EpochFinished)]
    assert len(epochs) == 2 and all(0.0 <= e.val["test_accuracy"] <= 1.0 for e in epochs)
    other = make_image_folder(tmp_path / "other", classes=("cat", "cow"))
    import app.run.trainer as trainer_module

    built = []
    monkeypatch.setattr(trainer_module.Trainer, "_build_model", lambda *args: built.append(args))
    events = []
    Trainer(_config(), FinetuneConfig(), RunPaths(str(image_folder), test_dir=str(other)), emit=events.append).run()
    failed = [e for e in events if isinstance(e, msg.TrainingFailed)]
    assert len(failed) == 1 and failed[0].user_error and not built  # said before the model is built
    assert f"The test folder {other}" in failed[0].message and "missing dog; unexpected cow" in failed[0].message


def test_bug_in_thread_is_reported_with_traceback(image_folder, monkeypatch):
    import app.run.trainer as trainer_module

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(trainer_module, "train_one_epoch", broken)
    events = []
    Trainer(_config(), FinetuneConfig(), RunPaths(str(image_folder)), emit=events.append).run()
    failed = [e for e in events if isinstance(e, msg.TrainingFailed)][0]
    assert not failed.user_error and "boom" in failed.message and "Traceback" in failed.details


def test_resume_continues_from_session_checkpoint(image_folder, tmp_path):
    config = _config(feedback_every=0, epochs=1)
    session = Session.create(tmp_path / "session", image_folder, None, config, FAST_FINETUNE)
    Trainer(config, FAST_FINETUNE, session.run_paths(), emit=lambda e: None, session=session).run()
    reopened = Session.open(tmp_path / "session")
    reopened.update_configs(config.replace(epochs=3))
    events = []
    Trainer(reopened.train_config, reopened.finetune_config, reopened.run_paths(), emit=events.append, session=reopened).run()
    started = [e for e in events if isinstance(e, msg.RunStarted)][0]
    assert (started.first_epoch, started.epochs) == (2, 3)
    assert [e.epoch for e in events if isinstance(e, msg.EpochFinished)] == [2, 3]
    assert [h["epoch"] for h in reopened.epoch_history()] == [1, 2, 3]


def test_start_finetune_with_nothing_painted_is_a_skipped_round(image_folder, tmp_path):
    """The engine's own guard against a 0-step round (and its chooser of black panels)."""
    events = []
    session = Session.create(tmp_path / "session", image_folder, None, _config(), FAST_FINETUNE)
    trainer = Trainer(session.train_config, session.finetune_config, session.run_paths(), emit=events.append, session=session)

    def emit(event):
        events.append(event)
        if isinstance(event, msg.FeedbackNeeded):
            trainer.submit(msg.StartFinetune(()))

    trainer._emit = emit
    trainer.run()
    assert not any(isinstance(e, (msg.FinetuneStarted, msg.FinetuneDone)) for e in events)
    decided = [e for e in events if isinstance(e, msg.RoundDecided)]
    assert decided and not decided[0].finetuned
    assert session.history()[0]["decision"] == "skipped"
    assert any(isinstance(e, msg.TrainingFinished) for e in events)


def test_gallery_commands_are_answered_while_the_round_waits(image_folder, tmp_path):
    events = []
    session = Session.create(tmp_path / "session", image_folder, None, _config(), FAST_FINETUNE)
    trainer = Trainer(session.train_config, session.finetune_config, session.run_paths(), emit=events.append, session=session)

    def emit(event):
        events.append(event)
        if isinstance(event, msg.FeedbackNeeded):
            trainer.submit(msg.DescribeImages())
        elif isinstance(event, msg.ImagesDescribed):
            trainer.submit(msg.PrepareImages((event.entries[0].relpath, "no/such.png")))
        elif isinstance(event, msg.ImagesPrepared):
            trainer.submit(msg.SkipFeedback())

    trainer._emit = emit
    trainer.run()
    described = [e for e in events if isinstance(e, msg.ImagesDescribed)][0]
    assert described.n_train == len(described.entries) > 0
    entry = described.entries[0]
    assert entry.predicted_label and 0.0 <= entry.confidence <= 1.0
    prepared = [e for e in events if isinstance(e, msg.ImagesPrepared)][0]
    assert [i.relpath for i in prepared.items] == [entry.relpath]
    assert prepared.missing == ("no/such.png",)
    assert prepared.items[0].saliency.ndim == 2 and prepared.items[0].reason.startswith("chosen by you; hiding the top")
    steps = [e for e in events if isinstance(e, msg.FinetuneStep)]
    assert steps == []  # the round was skipped: no fine-tune ran


def test_every_finetune_step_is_reported(image_folder, tmp_path):
    script, _ = _run_script(image_folder, tmp_path, msg.Commit())
    done = script.of(msg.FinetuneDone)[0]
    steps = script.of(msg.FinetuneStep)
    assert [s.step for s in steps] == list(range(1, done.report.steps + 1))
    assert all(s.max_steps == FAST_FINETUNE.max_steps for s in steps)
    started = script.of(msg.RunStarted)[0]
    assert sum(started.class_counts) == started.n_train
    batch = script.of(msg.BatchFinished)[-1]
    assert batch.ce <= batch.loss + 1e-6  # CE is the part of the loss the plots draw
