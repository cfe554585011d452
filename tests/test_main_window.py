"""MainWindow: defaults, form validation, engine events -> progress/plots/log, errors, closing.

Most tests drive the window with a scripted fake trainer (exact numbers, fast); one trains the
real engine on the demo data for two tiny epochs; one reopens the session it wrote.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import tkinter as tk
from pathlib import Path

import pytest
from tk_wait import wait_until

from app.engine.config import FinetuneConfig
from app.run import messages as msg
from ui.main_window.settings_panel import FormError

pytestmark = pytest.mark.gui


class FakeTrainer:
    """Emits a scripted run: `epochs` x `batches`, with exact losses; honours pause/stop."""

    instances: list = []

    def __init__(self, config, finetune_config, paths, *, emit, session, epochs=2, batches=5, fail=None, endless=False):
        self.config, self.paths, self.session, self.emit = config, paths, session, emit
        self.epochs, self.batches, self.fail, self.endless = epochs, batches, fail, endless
        self.commands: "queue.Queue" = queue.Queue()
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()
        self.calls = []
        FakeTrainer.instances.append(self)

    @property
    def stopping(self):
        return self._stop.is_set()

    def start(self):
        thread = threading.Thread(target=self.run, daemon=True)
        thread.start()
        return thread

    def pause(self):
        self.calls.append("pause")
        self._running.clear()

    def resume(self):
        self.calls.append("resume")
        self._running.set()

    def stop(self):
        self.calls.append("stop")
        self._stop.set()
        self._running.set()

    def submit(self, command):
        self.commands.put(command)

    def run(self):
        emit = self.emit
        emit(msg.StateChanged("loading"))
        if self.fail is not None:
            emit(self.fail)
            return
        emit(
            msg.RunStarted(
                "FakeCPU",
                ("a", "b"),
                100,
                20,
                1,
                self.epochs,
                self.batches,
                skipped=(("a/broken.png", "cannot identify image file"),),
            )
        )
        emit(msg.StateChanged("training"))
        epoch = 0
        while epoch < self.epochs or self.endless:
            epoch += 1
            for batch in range(1, self.batches + 1):
                if not self._running.is_set():
                    emit(msg.StateChanged("paused"))
                    self._running.wait()
                    emit(msg.StateChanged("training"))
                if self._stop.is_set():
                    time.sleep(0.8)  # "saving the checkpoint" takes a moment
                    emit(msg.StateChanged("stopped"))
                    emit(msg.TrainingFinished(epoch - 1, True))
                    return
                emit(msg.BatchFinished(epoch, batch, self.batches, 1.0 / epoch, 0.5, 0))
                time.sleep(0.02)
            emit(
                msg.EpochFinished(
                    epoch,
                    self.epochs,
                    {"loss": 1.0 / epoch, "accuracy": 0.5},
                    {"loss": 2.0 / epoch, "accuracy": 0.25 * epoch},
                    0.1,
                )
            )
        emit(msg.StateChanged("finished"))
        emit(msg.TrainingFinished(epoch, False))


def fake_factory(**options):
    def factory(config, finetune_config, paths, *, emit, session):
        return FakeTrainer(config, finetune_config, paths, emit=emit, session=session, **options)

    return factory


@pytest.fixture
def window_factory(tk_root, tmp_path):
    from ui.main_window.window import MainWindow

    made = []

    def make(**options):
        options.setdefault("sessions_root", str(tmp_path / "sessions"))
        options.setdefault("destroy_root_on_close", False)
        window = MainWindow(tk_root, **options)
        made.append(window)
        tk_root.update()
        return window

    yield make
    for window in made:
        for trainer in FakeTrainer.instances:
            trainer.stop()
        window.teardown()
    FakeTrainer.instances.clear()


@pytest.fixture
def data_folder(tmp_path):
    folder = tmp_path / "data"
    for name in ("a", "b"):
        (folder / name).mkdir(parents=True)
    return folder


# ----------------------------------------------------------------------------- building
def test_builds_with_newcomer_defaults(window_factory):
    window = window_factory()
    values = {name: var.get() for name, var in window.settings.vars.items()}
    assert values["train_dir"] == ""  # the demo data
    assert values["model"] == "small_cnn"
    assert values["epochs"] == "6"
    assert values["feedback_every"] == "2"
    assert values["images_per_round"] == "6"
    assert values["guidance"] == "rrr"
    assert values["lam"] == ""
    assert window.status_var.get() == "Ready. Press Train to start."
    assert "disabled" in window.pause_button.state()
    assert "disabled" in window.stop_button.state()
    assert "disabled" not in window.train_button.state()
    form = window.settings.read()
    assert form.train_dir is None and form.config.epochs == 6 and form.config.guidance == "rrr"


def test_bad_input_is_reported_next_to_each_field_and_in_a_dialog(window_factory, tmp_path):
    window = window_factory(trainer_factory=fake_factory())
    window.settings.vars["train_dir"].set(str(tmp_path / "nowhere"))
    window.settings.vars["epochs"].set("abc")
    window.settings.vars["lr"].set("0")
    window.settings.vars["lam"].set("-1")
    window.settings.vars["images_per_round"].set("0")
    assert window.on_train() is False
    errors = window.settings.errors_shown()
    assert errors == {
        "train_dir": "no such folder",
        "epochs": "enter a whole number (got 'abc')",
        "lr": "must be greater than 0",
        "lam": "must be 0 or more",
        "images_per_round": "must be at least 1",
    }
    dialog = window.error_dialog
    assert dialog is not None and dialog.winfo_exists()
    text = dialog.message_label.cget("text")
    assert "Epochs: enter a whole number (got 'abc')" in text
    assert "bug" not in dialog.hint_label.cget("text")
    assert window.trainer is None and not FakeTrainer.instances
    dialog.ok_button.invoke()
    window.settings.vars["train_dir"].set("")
    window.settings.vars["epochs"].set("3")
    window.settings.vars["lr"].set("0.01")
    window.settings.vars["lam"].set("")
    window.settings.vars["images_per_round"].set("4")
    assert window.settings.read().config.lr == 0.01
    assert window.settings.errors_shown() == {}


def test_the_test_folder_must_exist_and_differ_from_the_data_folder(window_factory, data_folder, tmp_path):
    window = window_factory()
    window.settings.vars["train_dir"].set(str(data_folder))
    window.settings.vars["test_dir"].set(str(tmp_path / "nowhere"))
    with pytest.raises(FormError):
        window.settings.read()
    assert window.settings.errors_shown() == {"test_dir": "no such folder"}
    window.settings.vars["test_dir"].set(str(data_folder) + "/")
    with pytest.raises(FormError):
        window.settings.read()
    assert window.settings.errors_shown() == {"test_dir": "must hold other images than the data folder"}
    from conftest import make_image_folder

    val = make_image_folder(tmp_path / "val", classes=("a", "b"), per_class=1)
    window.settings.vars["val_dir"].set(str(val))
    window.settings.vars["test_dir"].set(str(val))
    with pytest.raises(FormError):
        window.settings.read()
    assert window.settings.errors_shown() == {"test_dir": "must differ from the validation folder (which carries the shortcut)"}
    # the class folders are compared from their names, before any image is read
    wrong = make_image_folder(tmp_path / "wrong", classes=("a", "c"), per_class=1)
    window.settings.vars["test_dir"].set(str(wrong))
    with pytest.raises(FormError):
        window.settings.read()
    assert window.settings.errors_shown() == {"test_dir": "needs the data folder's class folders: missing b; unexpected c"}
    right = make_image_folder(tmp_path / "shortcut_free", classes=("a", "b"), per_class=1)
    window.settings.vars["test_dir"].set(str(right))
    assert window.settings.read().test_dir == str(right)


def test_guidance_none_and_lambda_reach_the_config(window_factory):
    window = window_factory()
    window.settings.vars["guidance"].set("none")
    window.settings.vars["lam"].set("2.5")
    config = window.settings.read().config
    assert config.guidance is None and config.lam == 2.5


def test_counterexamples_checkbox_reaches_the_config(window_factory):
    window = window_factory()
    assert window.settings.read().config.counterexamples is True  # on by default
    window.settings.counterexamples_check.invoke()  # a real click toggles it
    assert window.settings.read().config.counterexamples is False


def test_oversampling_field_reaches_the_config_and_rejects_less_than_one(window_factory):
    window = window_factory()
    assert window.settings.read().config.oversample_annotated == 10.0  # the engine's default
    window.settings.vars["oversample_annotated"].set("1")
    assert window.settings.read().config.oversample_annotated == 1.0
    window.settings.vars["oversample_annotated"].set("0.5")
    with pytest.raises(FormError):
        window.settings.read()
    assert window.settings.errors_shown() == {"oversample_annotated": "must be at least 1"}


# ----------------------------------------------------------------------------- fake engine
def test_events_update_progress_plots_log_and_status(window_factory, data_folder, tmp_path):
    window = window_factory(trainer_factory=fake_factory(epochs=2, batches=5))
    window.settings.vars["train_dir"].set(str(data_folder))
    assert window.on_train() is True
    assert "disabled" in window.train_button.state()
    wait_until(window, lambda: window.finished is not None)
    assert window.plots.epochs == [1, 2]
    assert window.plots.train_loss == [1.0, 0.5]
    assert window.plots.val_loss == [2.0, 1.0]
    assert window.plots.val_accuracy == [0.25, 0.5]
    assert window.plots.batch_x[:2] == [0.2, 0.4] and len(window.plots.batch_x) == 10
    assert window.progress.epoch_text.get() == "Epoch 2/2 done in 0:00"
    assert window.progress.run_text.get() == "Run: 100%"
    assert float(window.progress.run_bar.cget("value")) == 1.0
    assert window.device_var.get() == "Device: FakeCPU"
    assert window.status_var.get() == "Finished"
    lines = window.log.lines()
    assert "Training on FakeCPU: 100 training and 20 validation images, 2 classes, epochs 1-2" in lines
    assert "  a/broken.png: cannot identify image file" in lines
    assert "Epoch 2/2: train loss 0.5000, acc 50.0%; val loss 1.0000, acc 50.0% (0.1 s)" in lines
    # a new session folder with the settings of the run
    sessions = list((tmp_path / "sessions").iterdir())
    assert len(sessions) == 1
    stored = json.loads((sessions[0] / "session.json").read_text())
    assert stored["train_dir"] == str(data_folder.resolve())
    assert stored["train_config"]["epochs"] == 6
    assert str(sessions[0]) in window.session_var.get()
    assert "disabled" not in window.train_button.state()


def test_pause_toggles_resume(window_factory, data_folder):
    window = window_factory(trainer_factory=fake_factory(endless=True))
    window.settings.vars["train_dir"].set(str(data_folder))
    window.on_train()
    wait_until(window, lambda: "BatchFinished" in window.event_counts)
    window.pause_button.invoke()
    trainer = FakeTrainer.instances[-1]
    assert trainer.calls == ["pause"]
    assert window.pause_button.cget("text").endswith("Resume")
    wait_until(window, lambda: window.state == "paused")
    assert window.status_var.get() == "Paused"
    window.pause_button.invoke()
    assert trainer.calls == ["pause", "resume"]
    assert window.pause_button.cget("text").endswith("Pause")
    wait_until(window, lambda: window.state == "training")
    window.stop_button.invoke()
    assert trainer.calls[-1] == "stop"
    wait_until(window, lambda: window.finished is not None)
    assert window.finished.stopped and window.status_var.get() == "Stopped"


@pytest.mark.parametrize("user_error", [True, False])
def test_training_failed_shows_a_dialog(window_factory, data_folder, user_error):
    failure = msg.TrainingFailed(
        "the folder has no class subfolders" if user_error else "RuntimeError: shapes do not match",
        "" if user_error else "Traceback (most recent call last): ...",
        user_error=user_error,
    )
    window = window_factory(trainer_factory=fake_factory(fail=failure))
    window.settings.vars["train_dir"].set(str(data_folder))
    window.on_train()
    wait_until(window, lambda: window.error_dialog is not None)
    dialog = window.error_dialog
    assert dialog.message_label.cget("text") == failure.message
    hint = dialog.hint_label.cget("text")
    if user_error:
        assert "bug" not in hint and dialog.details_button is None
        assert dialog.title() == "Cannot train"
    else:
        assert "bug" in hint
        dialog.details_button.invoke()
        assert dialog.details_shown
        assert "Traceback (most recent call last): ..." in window.log.lines()
    assert window.status_var.get() == "Failed"
    assert "disabled" not in window.train_button.state()


def test_closing_mid_training_stops_and_joins_the_thread(tk_root, tmp_path, data_folder, capfd):
    from ui.main_window.window import MainWindow

    errors = []
    tk_root.report_callback_exception = lambda *exc: errors.append(exc)
    window = MainWindow(tk_root, sessions_root=str(tmp_path / "s"), trainer_factory=fake_factory(endless=True))
    window.settings.vars["train_dir"].set(str(data_folder))
    window.on_train()
    wait_until(tk_root, lambda: "EpochFinished" in window.event_counts)
    thread = window.thread
    tk_root.tk.call(tk_root.protocol("WM_DELETE_WINDOW"))  # the window manager's close button
    trainer = FakeTrainer.instances[-1]
    assert trainer.calls == ["stop"]
    assert not window.closed  # it waits for the thread without blocking the event loop
    wait_until(tk_root, lambda: window.status_var.get().startswith("Stopping..."), timeout=20)
    wait_until(tk_root, lambda: window.closed, timeout=20)
    assert not thread.is_alive()
    assert not window.pump.running
    with pytest.raises(tk.TclError):
        tk_root.winfo_exists()  # the root window is gone
    time.sleep(0.2)
    assert errors == []
    assert "invalid command name" not in capfd.readouterr().err
    FakeTrainer.instances.clear()


# ----------------------------------------------------------------------------- real engine
@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    """The demo data cut to 10 training / 3 validation images per digit (seconds per epoch)."""
    import shutil

    from datasets import ensure_demo_data

    full = ensure_demo_data(tmp_path_factory.getbasetemp() / "demo")
    mini = tmp_path_factory.mktemp("mini-demo-main")
    shutil.copy(full / "demo.json", mini / "demo.json")
    for split, count in (("train", 10), ("val", 3)):
        for class_dir in sorted((full / split).iterdir()):
            (mini / split / class_dir.name).mkdir(parents=True)
            for image in sorted(class_dir.glob("*.png"))[:count]:
                shutil.copy(image, mini / split / class_dir.name / image.name)
    return mini


def test_real_training_on_demo_data_updates_progress_and_plots(window_factory, demo_root, tmp_path):
    window = window_factory(demo_dir=str(demo_root), finetune_config=FinetuneConfig(max_steps=5, check_every=5))
    form = window.settings.vars
    form["epochs"].set("2")
    form["feedback_every"].set("1")
    form["images_per_round"].set("2")
    assert window.on_train() is True
    wait_until(window, lambda: window.brush_window is not None, timeout=120)
    assert window.device_var.get() == "Device: CPU"
    assert window.plots.epochs == [1]
    assert len(window.plots.batch_x) >= 1
    assert float(window.progress.run_bar.cget("value")) == pytest.approx(0.5)
    assert window.status_var.get() == "Waiting for your paint (brush window)"
    assert len(window.brush_window.items) == 2
    window.brush_window.cancel_button.invoke()  # skip the round: training goes on unchanged
    wait_until(window, lambda: window.finished is not None, timeout=120)
    assert not window.finished.stopped
    assert window.plots.epochs == [1, 2]
    assert [(r.round, r.epoch, r.committed, r.finetuned) for r in window.plots.rounds] == [(1, 1, False, False)]
    assert "Round 1 (after epoch 1) skipped" in window.log.lines()
    session = window.session
    assert session.checkpoint_path.is_file()
    assert [row["decision"] for row in session.history()] == ["cancelled"]

    # reopening the session redraws its curves and rounds and loads its settings
    window.on_new_session()
    assert window.plots.epochs == []
    assert window.open_session(str(session.folder)) is True
    assert window.plots.epochs == [1, 2]
    assert [(r.epoch, r.committed, r.finetuned) for r in window.plots.rounds] == [(1, False, False)]
    assert form["epochs"].get() == "2" and form["feedback_every"].get() == "1"
    assert form["train_dir"].get() == str(Path(demo_root, "train").resolve())
    assert "Train continues this session, 2 epochs done" in window.session_var.get()

    # Train now resumes it: one more epoch in the same folder, the curves continue
    form["epochs"].set("3")
    assert window.on_train() is True
    wait_until(window, lambda: window.finished is not None and window.finished.epoch == 3, timeout=120)
    assert window.plots.epochs == [1, 2, 3]
    assert window.session.folder == session.folder
    assert len(list((tmp_path / "sessions").iterdir())) == 1
    assert "Training on CPU: 100 training and 30 validation images, 10 classes, epochs 3-3" in window.log.lines()


def test_opening_a_folder_that_is_no_session_says_so(window_factory, tmp_path):
    window = window_factory()
    assert window.open_session(str(tmp_path)) is False
    assert "is not a session folder" in window.error_dialog.message_label.cget("text")
    assert window.resume_session is None


def test_blank_data_folder_makes_the_demo_data_in_the_background(window_factory, tmp_path):
    demo = tmp_path / "cache" / "demo"
    window = window_factory(demo_dir=str(demo), trainer_factory=fake_factory(epochs=1, batches=2))
    assert window.on_train() is True
    assert window.state == "preparing"  # the window is back in its loop while it is made
    assert window.status_var.get() == "Preparing the demo data (first run only)..."
    assert "disabled" in window.train_button.state()
    wait_until(window, lambda: window.finished is not None, timeout=120)
    assert (demo / "demo.json").is_file()
    trainer = FakeTrainer.instances[-1]
    assert Path(trainer.paths.train_dir) == (demo / "train").resolve()
    assert Path(trainer.paths.val_dir) == (demo / "val").resolve()
    assert Path(trainer.paths.test_dir) == (demo / "test").resolve()  # shortcut-free: plotted from epoch 1
    # The form now names the demo's folders, so Stop then Train resumes the session (a blank
    # data folder against the session's demo folder read as "other data" and was refused).
    assert Path(window.settings.vars["train_dir"].get()) == (demo / "train").resolve()
    assert Path(window.settings.vars["test_dir"].get()) == (demo / "test").resolve()
    assert window.on_train() is True
    wait_until(window, lambda: len(FakeTrainer.instances) == 2 and window.finished is not None, timeout=60)
    assert FakeTrainer.instances[-1].session.folder == trainer.session.folder
    # New session blanks what the demo run filled in, so the user's own data does not inherit
    # the demo's validation and test folders (a folder the user typed is kept).
    window.settings.vars["val_dir"].set(str(tmp_path))
    window.on_new_session()
    assert window.settings.vars["train_dir"].get() == "" and window.settings.vars["test_dir"].get() == ""
    assert window.settings.vars["val_dir"].get() == str(tmp_path)


def test_resuming_with_other_data_is_refused_with_a_message(window_factory, data_folder, tmp_path):
    window = window_factory(trainer_factory=fake_factory(epochs=1, batches=2))
    window.settings.vars["train_dir"].set(str(data_folder))
    window.on_train()
    wait_until(window, lambda: window.finished is not None)
    assert window.open_session(str(window.session.folder))
    other = tmp_path / "other"
    (other / "a").mkdir(parents=True)
    window.settings.vars["train_dir"].set(str(other))
    assert window.on_train() is False
    assert "This session trains on" in window.error_dialog.message_label.cget("text")
    assert len(FakeTrainer.instances) == 1
    window.settings.vars["train_dir"].set(str(data_folder))
    assert window.on_train() is True  # the session's own folder: resumes
    wait_until(window, lambda: len(FakeTrainer.instances) == 2 and window.finished is not None)
    first, second = FakeTrainer.instances
    assert second.session.folder == first.session.folder  # the same session folder
    assert second.paths.checkpoint_out == first.paths.checkpoint_out


# ----------------------------------------------------------------------------- pure helpers
def test_eta_uses_the_median_batch_time_and_the_epoch_overhead():
    from ui.widgets.progress_panel import EtaEstimator, format_duration

    eta = EtaEstimator()
    eta.start(first_epoch=1, epochs=3, batches_per_epoch=10)
    for batch, now in enumerate([100.0, 100.5, 101.0, 101.5, 104.0], start=1):  # one slow batch
        eta.batch_done(1, batch, 10, now=now)
    assert eta.seconds_per_batch == 0.5  # median of 0.5, 0.5, 0.5, 2.5
    assert eta.epoch_remaining() == 2.5  # 5 batches left
    assert eta.run_remaining() == 2.5 + 2 * 5.0
    eta.epoch_done(1, seconds=7.0)  # 10 x 0.5 s of batches + 2 s validation
    assert eta.epoch_overhead == 2.0
    eta.batch_done(2, 1, 10, now=200.0)  # the gap over validation is not a batch time
    assert eta.seconds_per_batch == 0.5
    assert eta.run_remaining() == (9 * 0.5 + 2.0) + (10 * 0.5 + 2.0)
    assert eta.run_fraction() == 11 / 30
    assert [format_duration(s) for s in (None, 0.4, 75.4, 3725)] == ["--:--", "0:00", "1:15", "1:02:05"]


def test_round_marks_from_history_records():
    from ui.widgets.plots import round_mark_from_record

    rows = [
        {"round": 1, "epoch": 2, "decision": "commit"},
        {"round": 2, "epoch": 4, "decision": "reject"},
        {"round": 3, "epoch": 6, "decision": "cancelled"},
        {"round": 4, "epoch": 7, "decision": "stopped"},
        {"round": 5, "decision": "commit"},
    ]
    marks = [round_mark_from_record(row) for row in rows]
    assert [(m.round, m.epoch, m.committed, m.finetuned) for m in marks[:4]] == [
        (1, 2, True, True),
        (2, 4, False, True),
        (3, 6, False, False),
        (4, 7, False, True),
    ]
    assert marks[4] is None


def test_an_epoch_run_again_after_stop_replaces_its_batch_curve():
    # Stop in epoch 2 after 3 of 4 batches, Train: epoch 2 runs again from its first batch;
    # the stopped batches go, so the faint curve does not run back over them
    from ui.widgets.plot_data import PlotData

    data = PlotData()
    data._init_data()
    for epoch, batch in [(1, 1), (1, 2), (1, 3), (1, 4), (2, 1), (2, 2), (2, 3), (2, 1), (2, 2)]:
        data.add_batch(epoch, batch, 4, loss=float(10 * epoch + batch), accuracy=0.5)
    assert data.batch_x == [0.25, 0.5, 0.75, 1.0, 1.25, 1.5]
    assert data.batch_loss == [11.0, 12.0, 13.0, 14.0, 21.0, 22.0]
    assert len(data.batch_accuracy) == 6


# ----------------------------------------------------------------------------- sessions continue
def test_train_after_stop_continues_the_same_session(window_factory, data_folder, tmp_path):
    window = window_factory(trainer_factory=fake_factory(endless=True))
    window.settings.vars["train_dir"].set(str(data_folder))
    window.train_button.invoke()
    wait_until(window, lambda: "EpochFinished" in window.event_counts)
    first = window.session
    window.stop_button.invoke()
    wait_until(window, lambda: window.finished is not None)
    assert "Train continues this session" in window.session_var.get()
    # stopped: the progress lines no longer promise a time left
    assert window.progress.run_text.get().startswith("Run: stopped at ")
    assert " left" not in window.progress.epoch_text.get()
    plotted = list(window.plots.epochs)
    window.train_button.invoke()
    wait_until(window, lambda: len(FakeTrainer.instances) == 2)
    second = FakeTrainer.instances[-1]
    assert second.session.folder == first.folder
    assert second.paths.checkpoint_out == str(first.checkpoint_path)
    assert window.plots.epochs[: len(plotted)] == plotted  # the curves were not reset
    assert len(list((tmp_path / "sessions").iterdir())) == 1
    assert sum(line.startswith("New session") for line in window.log.lines()) == 1
    wait_until(window, lambda: window.state == "training")
    window.stop_button.invoke()
    wait_until(window, lambda: window.finished is not None)
    window.new_session_button.invoke()  # a new session is an explicit choice
    assert window.resume_session is None and window.plots.epochs == []
    window.train_button.invoke()
    wait_until(window, lambda: len(FakeTrainer.instances) == 3)
    assert FakeTrainer.instances[-1].session.folder != first.folder


def test_finished_session_asks_for_more_epochs_instead_of_running_nothing(window_factory, data_folder):
    window = window_factory(trainer_factory=fake_factory(epochs=2, batches=2))
    window.settings.vars["train_dir"].set(str(data_folder))
    window.settings.vars["epochs"].set("2")
    window.train_button.invoke()
    wait_until(window, lambda: window.finished is not None)
    assert window.epochs_done == 2
    window.train_button.invoke()
    dialog = window.more_epochs_dialog
    assert dialog is not None and len(FakeTrainer.instances) == 1
    assert "trained all 2 of its epochs" in dialog.message_label.cget("text")
    dialog.more_var.set("3")
    dialog.accept_button.invoke()
    wait_until(window, lambda: len(FakeTrainer.instances) == 2)
    assert FakeTrainer.instances[-1].config.epochs == 5  # the total: 2 done + 3 more
    assert window.settings.vars["epochs"].get() == "5"
    assert "Adding 3 epochs: epochs 3-5 of this session" in window.log.lines()


def test_trainer_refuses_a_resume_whose_epochs_are_used_up(tmp_path):
    """The engine's own guard (the CLI and any other driver): a clear UserError, no 'Epoch 7/6'."""
    import torch

    from app.engine.checkpoint import save_checkpoint
    from app.engine.config import RunPaths, TrainConfig
    from app.run import Trainer
    from models import build_model

    data = tmp_path / "data"
    from PIL import Image

    for name in ("a", "b"):
        (data / name).mkdir(parents=True)
        for i in range(4):
            Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(data / name / f"{i}.png")
    checkpoint = tmp_path / "c.pt"
    save_checkpoint(
        checkpoint,
        build_model("small_cnn", 2),
        model_name="small_cnn",
        classes=["a", "b"],
        input_size=32,
        mean=(0.5,) * 3,
        std=(0.5,) * 3,
        epoch=6,
        train_config={},
        finetune_config={},
        metrics={},
        history=[{"epoch": 6}],
    )
    events = []
    trainer = Trainer(
        TrainConfig(model="small_cnn", epochs=6, feedback_every=0),
        FinetuneConfig(),
        RunPaths(str(data), None, None, str(checkpoint), str(checkpoint), resume=True),
        emit=events.append,
    )
    trainer.run()
    failed = [e for e in events if isinstance(e, msg.TrainingFailed)]
    assert failed and failed[0].user_error
    assert "already trained all 6 of its epochs" in failed[0].message
    assert not any(isinstance(e, msg.RunStarted) for e in events)
    del torch


@pytest.mark.parametrize("layout", ["empty", "one_class"])
def test_a_failed_train_leaves_no_empty_session_folder(window_factory, tmp_path, layout):
    """The real engine on a folder it cannot train on: the dialog, and no folder left behind."""
    from PIL import Image

    data = tmp_path / "bad"
    data.mkdir()
    if layout == "one_class":
        (data / "only").mkdir()
        for i in range(3):
            Image.new("RGB", (8, 8)).save(data / "only" / f"{i}.png")
    window = window_factory()  # the real Trainer
    window.settings.vars["train_dir"].set(str(data))
    window.train_button.invoke()
    wait_until(window, lambda: window.state == "failed", timeout=60)
    assert window.error_dialog is not None
    sessions = tmp_path / "sessions"
    assert not sessions.exists() or list(sessions.iterdir()) == []
    assert window.resume_session is None and window.session is None
    assert window.session_var.get() == "New session on Train"


# ----------------------------------------------------------------------------- progress
def test_run_estimate_glides_when_the_pace_changes():
    """Batches slow from 1 s to 2 s (guided batches after a round): the shown estimate never
    jumps by more than a few percent between batches, yet converges to the new pace."""
    from ui.widgets.progress_panel import EtaEstimator

    eta = EtaEstimator()
    eta.start(first_epoch=1, epochs=10, batches_per_epoch=50)
    now, shown = 0.0, []
    for batch in range(1, 51):
        now += 1.0 if batch <= 25 else 2.0
        eta.batch_done(1, batch, 50, now=now)
        shown.append(eta.smoothed_run_remaining(now))
    raw_jump = 2.0  # the raw estimate doubles within the epoch (the median flips)
    steps = [abs(b - a) / a for a, b in zip(shown[25:], shown[26:])]
    assert max(steps) < 0.15 < raw_jump - 1
    eta.epoch_done(1, seconds=75.0)
    for batch in range(1, 51):  # a second epoch at the new pace: the estimate has caught up
        now += 2.0
        eta.batch_done(2, batch, 50, now=now)
    assert eta.smoothed_run_remaining(now) == pytest.approx(eta.run_remaining(), rel=0.05)
    eta.pause()  # painting for ten minutes does not eat the estimate
    assert eta.smoothed_run_remaining(now + 600) == pytest.approx(eta.smoothed_run_remaining(now), rel=1e-6)


def test_step_timer_gives_the_time_left_of_a_round():
    from ui.widgets.progress_panel import StepTimer

    timer = StepTimer()
    assert timer.remaining(0, 40) is None
    for step, now in enumerate([10.0, 12.0, 14.0, 16.5], start=1):
        timer.step_done(step, now=now)
    assert timer.remaining(4, 40) == 36 * 2.0


def test_finetune_progress_moves_every_step_with_the_time_left(window_factory):
    window = window_factory()
    window.events.put(msg.FinetuneStarted(1, 3, 40))
    wait_until(window, lambda: "FinetuneStarted" in window.event_counts)
    bar = window.progress.finetune_bar
    assert str(bar.cget("mode")) == "indeterminate"  # busy measuring, not hung
    assert "measuring the model" in window.progress.finetune_text.get()
    for step in (1, 2, 3):
        window.events.put(msg.FinetuneStep(1, step, 40))
        wait_until(window, lambda step=step: window.event_counts["FinetuneStep"] == step)
        assert float(bar.cget("value")) == pytest.approx(step / 40)
    assert str(bar.cget("mode")) == "determinate"
    text = window.progress.finetune_text.get()
    assert text.startswith("Fine-tune round 1: step 3/40, at most ") and text.endswith(" left")
    window.events.put(msg.FinetuneProgress(1, 5, 40, 0.25, 0.5))
    wait_until(window, lambda: "FinetuneProgress" in window.event_counts)
    assert "check at step 5: guidance 0.25, val loss 0.5" in window.progress.finetune_text.get()


def test_done_with_nothing_painted_resumes_without_a_chooser(window_factory, demo_root):
    window = window_factory(demo_dir=str(demo_root), finetune_config=FinetuneConfig(max_steps=5, check_every=5))
    form = window.settings.vars
    form["epochs"].set("2")
    form["feedback_every"].set("1")
    form["images_per_round"].set("2")
    window.train_button.invoke()
    wait_until(window, lambda: window.brush_window is not None, timeout=120)
    window.brush_window.done_button.invoke()  # nothing painted
    wait_until(window, lambda: window.finished is not None, timeout=120)
    assert window.event_counts["FinetuneStarted"] == 0 and window.event_counts["FinetuneDone"] == 0
    assert window.chooser_window is None
    assert "Nothing painted, so nothing to fine-tune; training resumes" in window.log.lines()
    assert [row["decision"] for row in window.session.history()] == ["cancelled"]
    assert [(r.committed, r.finetuned) for r in window.plots.rounds] == [(False, False)]


# ----------------------------------------------------------------------------- trust warnings
def _small_folder(root, per_class=16, size=32):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for name in ("circles", "squares"):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i:02d}.png")
    return root


def test_a_small_folder_gets_a_prominent_trust_warning(window_factory, tmp_path):
    """The real engine on 32 noise images: the banner says why the numbers mean nothing and
    offers the remedies; "Use small_cnn" and "Hide" act."""
    data = _small_folder(tmp_path / "small")
    window = window_factory()
    form = window.settings.vars
    form["train_dir"].set(str(data))
    form["epochs"].set("2")
    form["feedback_every"].set("0")
    window.train_button.invoke()
    wait_until(window, lambda: window.finished is not None or window.state == "failed", timeout=120)
    assert window.finished is not None
    banner = window.trust_banner
    window.update()
    assert banner.shown and banner.winfo_ismapped()
    codes = [w.code for w in window.trust_warnings]
    assert "few_steps" in codes and "few_images" in codes
    text = banner.text()
    assert text.startswith("\u26a0 These numbers may not mean anything")
    assert "1 step per epoch" in text and "pretrained weights" in text
    assert "(small_cnn)" not in text and not banner.smaller_button.winfo_ismapped()  # it is
    assert banner.weights_button.winfo_ismapped()
    assert any(line.startswith("Warning: Too few steps") for line in window.log.lines())
    # a bigger model on the same folder is offered the smaller one
    from app.engine.trust_checks import DataSizes, trust_warnings

    sizes = DataSizes(26, 6, 2, 64, "resnet18", (13, 13))
    banner.show(trust_warnings(window.controller.epoch_records, sizes))
    window.update()
    assert "(small_cnn)" in banner.text() and banner.smaller_button.winfo_ismapped()
    form["model"].set("resnet18")
    banner.smaller_button.invoke()
    assert form["model"].get() == "small_cnn" and window.resume_session is None
    assert not banner.shown  # a new session: the warnings belonged to the old one


def test_a_corrupt_file_is_logged_once_and_plurals_read_right(window_factory, tmp_path):
    data = _small_folder(tmp_path / "small", per_class=4)
    (data / "circles" / "broken.png").write_bytes(b"not a png")
    window = window_factory()
    window.settings.vars["train_dir"].set(str(data))
    window.settings.vars["epochs"].set("1")
    window.settings.vars["feedback_every"].set("0")
    window.train_button.invoke()
    wait_until(window, lambda: window.finished is not None or window.state == "failed", timeout=120)
    lines = window.log.lines()
    mentions = [line for line in lines if "broken.png" in line]
    assert len(mentions) == 1, lines
    assert "1 image was skipped (unreadable):" in lines


def test_locked_settings_look_locked_and_lambda_says_its_default(window_factory, data_folder):
    from tkinter import ttk

    window = window_factory(trainer_factory=fake_factory(endless=True))
    settings = window.settings
    assert settings.error_labels["lam"].cget("text") == "blank: 10 (rrr default)"
    settings.vars["guidance"].set("punisher")
    assert settings.error_labels["lam"].cget("text") == "blank: 0.001 (punisher default)"
    settings.vars["guidance"].set("rrr")
    settings.vars["train_dir"].set(str(data_folder))
    window.train_button.invoke()
    wait_until(window, lambda: window.state == "training")
    style = ttk.Style(window)
    for name in ("model", "saliency_method", "guidance", "lam", "selection", "val_dir"):
        widget = settings.inputs[name]
        assert widget.instate(["disabled"]), name
        kind = widget.winfo_class()
        background = style.lookup(kind, "fieldbackground", ["disabled"])
        assert background == "#e6e6e6", (name, background)
    window.stop_button.invoke()
    wait_until(window, lambda: window.finished is not None)
    assert settings.inputs["model"].instate(["!disabled"])


def test_continuing_a_session_with_another_model_is_refused_with_a_message(window_factory, data_folder):
    window = window_factory(trainer_factory=fake_factory(epochs=1, batches=2))
    window.settings.vars["train_dir"].set(str(data_folder))
    window.train_button.invoke()
    wait_until(window, lambda: window.finished is not None)
    window.settings.vars["model"].set("resnet18")
    assert window.on_train() is False
    assert "This session trains small_cnn" in window.error_dialog.message_label.cget("text")
    assert len(FakeTrainer.instances) == 1


def _feedback_item(relpath, seed=0, side=16):
    import numpy as np

    rng = np.random.default_rng(seed)
    return msg.FeedbackItem(
        relpath=relpath,
        image=rng.integers(0, 256, (side, side, 3), dtype=np.uint8),
        saliency=rng.random((8, 8)).astype("float32"),
        true_label="a",
        predicted_label="a",
        confidence=0.9,
        reason="entropy 1.00",
    )


def test_stop_ends_a_fine_tune_round_into_the_chooser_and_asks_while_painting(window_factory, data_folder):
    """Issue 21: Stop threw a 26-minute round away, and while painting it dropped the round
    without asking."""
    window = window_factory(trainer_factory=fake_factory(endless=True))
    window.settings.vars["train_dir"].set(str(data_folder))
    window.on_train()
    wait_until(window, lambda: "BatchFinished" in window.event_counts)
    trainer = FakeTrainer.instances[-1]
    # a round: the brush window opens; Stop asks first, and "Keep painting" keeps it
    window.events.put(msg.FeedbackNeeded(1, 1, (_feedback_item("a/1.png"),), "entropy"))
    wait_until(window, lambda: window.brush_window is not None)
    window.stop_button.invoke()
    dialog = window.stop_dialog
    assert dialog is not None and "what you painted is saved" in dialog.message_label.cget("text")
    dialog.no_button.invoke()
    assert "stop" not in trainer.calls and window.brush_window is not None
    window.brush_window.done_button.invoke()
    # the round fine-tunes: Stop ends the round (the chooser will open), not the run
    window.events.put(msg.StateChanged("finetuning"))
    wait_until(window, lambda: window.state == "finetuning")
    window.stop_button.invoke()
    sent = []
    while not trainer.commands.empty():
        sent.append(trainer.commands.get())
    assert msg.StopRound() in sent and "stop" not in trainer.calls
    assert "Ending the fine-tune round: the chooser opens with the candidate so far" in window.log.lines()
    window.events.put(msg.StateChanged("training"))
    wait_until(window, lambda: window.state == "training")
    # a Stop "Stop the run" while painting stops it
    window.events.put(msg.FeedbackNeeded(2, 2, (_feedback_item("a/2.png", 1),), "entropy"))
    wait_until(window, lambda: window.brush_window is not None)
    window.stop_button.invoke()
    window.stop_dialog.yes_button.invoke()
    assert trainer.calls[-1] == "stop"
    wait_until(window, lambda: window.finished is not None)


def test_the_brush_window_says_what_the_round_costs_and_offers_a_shorter_one(window_factory, data_folder):
    """Issue 21: a resnet18 round on a CPU never reached the chooser; say the cost first."""
    window = window_factory(trainer_factory=fake_factory(endless=True))
    window.settings.vars["train_dir"].set(str(data_folder))
    window.on_train()
    wait_until(window, lambda: window.event_counts.get("BatchFinished", 0) >= 3)
    window.pause_button.invoke()
    wait_until(window, lambda: window.state == "paused")
    window.progress.eta._durations.clear()
    window.progress.eta._durations.extend([20.0] * 5)  # a slow device: 20 s per batch of 64 (the default)
    window.events.put(msg.FeedbackNeeded(1, 1, (_feedback_item("a/1.png"),), "entropy"))
    wait_until(window, lambda: window.brush_window is not None)
    brush = window.brush_window
    assert brush.round_cost_label.cget("text").startswith("Done starts a fine-tune round on FakeCPU: about 60.0 s per step")
    full, short = brush.round_buttons[150], brush.round_buttons[30]
    assert full.cget("text") == "Full round: up to 150 steps, at most about 2:30:00"
    assert short.cget("text") == "Shorter round: up to 30 steps, at most about 30:00"
    assert brush.round_steps == 30  # a round of hours: the shorter one is chosen for the user
    full.invoke()
    assert brush.round_steps is None
    short.invoke()
    brush.mask[2:6, 2:6] = 1
    brush.done_button.invoke()
    trainer = FakeTrainer.instances[-1]
    sent = []
    while not trainer.commands.empty():
        sent.append(trainer.commands.get())
    assert sent[-1] == msg.StartFinetune(("a/1.png",), max_steps=30)
    assert "Painted 1 image; fine-tuning (30 steps at most)..." in window.log.lines()


def test_a_measured_step_beats_the_estimate_from_training_batches():
    from ui.helpers.round_cost import GUIDED_STEP_FACTOR, round_cost, step_seconds

    assert step_seconds(None, 2.0, 64, 32) == pytest.approx(2.0 * 64 / 64 * GUIDED_STEP_FACTOR)
    assert step_seconds(0.5, 2.0, 64, 32) == 0.5  # the last round's median step
    assert step_seconds(None, None, 64, 32) is None
    unknown = round_cost(150, None, "CPU")
    assert unknown.summary() == "Done starts a fine-tune round on CPU: its cost is not measured yet."
    assert not unknown.suggest_short and unknown.choice_text(150) == "up to 150 steps"
    assert not round_cost(150, 0.01, "GPU").suggest_short  # 1.5 s: no reason to cut it short


def test_the_run_never_ends_before_its_epoch_nor_hides_a_round():
    """Issue 21: "time left" of the run shorter than the current epoch's in the last epoch
    (0:52 vs 1:32), and "Run: 67 %, 0:03 left" during a round of hours."""
    from ui.widgets.progress_panel import EtaEstimator

    eta = EtaEstimator()
    eta.start(1, 3, 10)
    now = 0.0
    for epoch, pace in ((1, 1.0), (2, 1.0), (3, 4.0)):  # the last epoch is 4x slower (guided)
        for batch in range(1, 11):
            now += pace
            eta.batch_done(epoch, batch, 10, now=now)
            shown = eta.shown_run_remaining(now)
            if shown is None:  # the first batch: nothing measured yet
                continue
            assert shown >= eta.epoch_remaining()  # never less than this epoch still needs
            if epoch == 3:
                assert shown == eta.epoch_remaining()
        eta.epoch_done(epoch, pace * 10)


def test_during_a_round_the_run_line_says_training_waits_and_adds_the_round(window_factory):
    window = window_factory()
    progress = window.progress
    progress.run_started(1, 3, 10)
    progress.eta._durations.extend([2.0] * 5)
    progress.eta.batch = 5
    window.events.put(msg.FinetuneStarted(1, 3, 150))
    wait_until(window, lambda: "FinetuneStarted" in window.event_counts)
    assert progress.run_text.get().startswith("Run: 17%; training waits for this round, then 0:50")
    progress.step_timer._durations.extend([60.0] * 3)
    window.events.put(msg.FinetuneStep(1, 10, 150))
    wait_until(window, lambda: "FinetuneStep" in window.event_counts)
    assert "training waits for this round, then 0:50 (at most 2:20:50 in all)" in progress.run_text.get()


def test_the_app_reopens_the_last_session_and_lists_recent_ones(window_factory, data_folder, tmp_path):
    """Issue 21: reopening the app said "New session on Train" (Train started over), and Open
    session was a bare folder picker listing timestamps."""
    import os

    from app.engine.config import TrainConfig
    from app.run.session import Session

    root = tmp_path / "sessions"
    older = Session.create(root / "20260101-090000", data_folder, None, TrainConfig(model="small_cnn", epochs=4))
    older.record_epochs(2)
    newer = Session.create(root / "20260102-090000", data_folder, None, TrainConfig(model="resnet18", epochs=6))
    newer.record_epochs(3)
    newer.append_history({"round": 1, "decision": "commit"})
    newer.masks.save("a/1.png", __import__("numpy").ones((4, 4), "int8"))
    os.utime(older.folder / "session.json", (1_700_000_000, 1_700_000_000))  # used long ago

    window = window_factory(sessions_root=str(root), reopen_last=True)
    assert window.session is not None and Path(window.session.folder) == newer.folder
    assert window.session_var.get().startswith(f"{newer.folder}\n(Train continues this session")
    assert window.settings.vars["model"].get() == "resnet18"
    assert any(line.startswith(f"Opened session {newer.folder}") for line in window.log.lines())
    assert window.plots.run_epochs == 6  # the x range is the session's 6 epochs, not the 3 done

    window.open_session_button.invoke()
    dialog = window.sessions_dialog
    rows = [dialog.tree.item(item, "values") for item in dialog.tree.get_children()]
    assert [row[1:] for row in rows] == [
        (str(data_folder.resolve()), "resnet18", "3/6", "1", "1"),
        (str(data_folder.resolve()), "small_cnn", "2/4", "0", "0"),
    ]
    second = dialog.tree.get_children()[1]
    dialog.tree.selection_set(second)
    dialog.update()
    assert dialog.folder_label.cget("text") == f"Session folder: {older.folder}"
    window.progress.run_text.set("Run: 40%, 1:00 left")  # what a run before left there
    dialog.open_button.invoke()
    assert Path(window.session.folder) == older.folder and window.settings.vars["model"].get() == "small_cnn"
    assert window.progress.run_text.get() == "Run: not started"


def test_the_recent_sessions_columns_fit_their_longest_values(tk_root):
    # at 1280 x 720 the list cut "2026-12-08 01:04" to "01:0" and the heading "Rounds" to "Round"
    import tkinter.font as tkfont

    from models import MODEL_NAMES
    from ui.windows.sessions_dialog import COLUMNS

    cell, heading = tkfont.nametofont("TkDefaultFont"), tkfont.nametofont("TkHeadingFont")
    longest = {"used": "2026-12-08 01:04", "model": max(MODEL_NAMES, key=cell.measure), "epochs": "120/120", "masks": "10000"}
    for key, title, width in COLUMNS:
        assert heading.measure(title) + 12 <= width, key
        assert cell.measure(longest.get(key, "")) + 12 <= width, key


def test_the_trust_banner_says_why_its_buttons_wait_and_offers_only_what_the_app_has(window_factory, data_folder):
    """Issue 21: the banner's buttons were disabled during training without a word, and it
    advised "freeze BatchNorm", which no setting offers."""
    from app.engine.trust_checks import TrustWarning
    from ui.main_window.trust_banner import BUSY_NOTE

    window = window_factory(trainer_factory=fake_factory(endless=True))
    banner = window.trust_banner
    banner.show(
        (
            TrustWarning(
                "few_steps", "Too few steps for BatchNorm's statistics", "1 step per epoch", ("frozen_batchnorm", "pretrained")
            ),
        )
    )
    window.update()
    assert "freeze BatchNorm (" not in banner.text() and "no setting to freeze BatchNorm" in banner.text()
    assert banner.busy_label.cget("text") == ""
    window.settings.vars["train_dir"].set(str(data_folder))
    window.on_train()
    wait_until(window, lambda: "BatchFinished" in window.event_counts)
    assert banner.weights_button.instate(["disabled"]) and banner.busy_label.cget("text") == BUSY_NOTE
    window.stop_button.invoke()
    wait_until(window, lambda: window.finished is not None)
    assert banner.weights_button.instate(["!disabled"]) and banner.busy_label.cget("text") == ""


def test_the_brush_view_carries_over_to_the_next_round(window_factory, data_folder):
    """Issue 21: the view settings (heatmap, opacities) reset every round."""
    window = window_factory(trainer_factory=fake_factory(endless=True))
    window.settings.vars["train_dir"].set(str(data_folder))
    window.on_train()
    wait_until(window, lambda: "BatchFinished" in window.event_counts)
    window.events.put(msg.FeedbackNeeded(1, 1, (_feedback_item("a/1.png"),), "entropy"))
    wait_until(window, lambda: window.brush_window is not None)
    brush = window.brush_window
    brush.heatmap_check.invoke()  # off
    brush.opacity_scale.set(70)
    brush.paint_opacity_scale.set(30)
    brush.update()
    brush.done_button.invoke()
    window.events.put(msg.FeedbackNeeded(2, 2, (_feedback_item("a/2.png", 1),), "entropy"))
    wait_until(window, lambda: window.brush_window is not None)
    again = window.brush_window
    assert again is not brush
    assert (again.show_heatmap_var.get(), again.opacity_var.get(), again.paint_opacity_var.get()) == (False, 70, 30)
    assert "1 image pixel = " in again.scale_label.cget("text")  # the zoom's scale on its own line


@pytest.mark.parametrize("ending", ["stopped", "failed"])
def test_new_session_resets_the_status_line_and_says_so_in_the_log(window_factory, data_folder, ending):
    # the status bar kept "Stopped" / "Failed" of the session left behind, and the log said nothing
    failure = msg.TrainingFailed("the folder has no class subfolders", "", user_error=True) if ending == "failed" else None
    window = window_factory(trainer_factory=fake_factory(endless=True, fail=failure))
    window.settings.vars["train_dir"].set(str(data_folder))
    window.train_button.invoke()
    if failure is None:
        wait_until(window, lambda: "EpochFinished" in window.event_counts)
        window.stop_button.invoke()
        wait_until(window, lambda: window.finished is not None)
        assert window.status_var.get() == "Stopped"
        folder = window.session.folder
    else:
        wait_until(window, lambda: window.error_dialog is not None)
        window.error_dialog.destroy()
        assert window.status_var.get() == "Failed"
    window.new_session_button.invoke()
    assert window.status_var.get() == "Ready. Press Train to start."
    last = window.log.lines()[-1]
    assert last.startswith("The next Train starts a new session")
    if failure is None:
        assert f"{folder} is kept (Open session... reopens it)" in last
    assert "disabled" not in window.train_button.state()


def test_an_epochs_line_comes_before_its_checkpoint_line(window_factory):
    # the trainer saves the checkpoint before it reports the epoch: the log read backwards
    window = window_factory()
    window.handle_event(msg.RunStarted("FakeCPU", ("a", "b"), 100, 20, 1, 2, 5))
    window.handle_event(msg.CheckpointSaved("/s/checkpoint.pth", 1))
    window.handle_event(msg.EpochFinished(1, 2, {"loss": 1.0, "accuracy": 0.5}, {"loss": 2.0, "accuracy": 0.25}, 0.1))
    window.handle_event(msg.CheckpointSaved("/s/checkpoint.pth", 1))  # a stop mid-epoch 2: at once
    lines = window.log.lines()
    epoch = lines.index("Epoch 1/2: train loss 1.0000, acc 50.0%; val loss 2.0000, acc 25.0% (0.1 s)")
    assert lines[epoch + 1 :] == ["Checkpoint saved (epoch 1)", "Checkpoint saved (epoch 1)"]
    window.handle_event(msg.CheckpointSaved("/s/checkpoint.pth", 2))  # its epoch never came: the end says it
    window.handle_event(msg.TrainingFinished(2, True))
    assert window.log.lines()[-2:] == ["Checkpoint saved (epoch 2)", "Stopped after epoch 2; session saved"]


def test_discover_waits_for_a_checkpoint_and_its_tip_says_why(window_factory, data_folder):
    # "Discover..." was enabled before any session: pressing it could only fail
    window = window_factory(trainer_factory=fake_factory(endless=True))
    assert window.discover_button.instate(["disabled"])
    assert window.discover_tip.text().startswith("Discovery needs a trained model")
    window.settings.vars["train_dir"].set(str(data_folder))
    window.train_button.invoke()
    wait_until(window, lambda: "EpochFinished" in window.event_counts)
    assert window.discover_button.instate(["disabled"])  # the fake trainer writes no checkpoint
    window.session.checkpoint_path.write_bytes(b"a model")
    window.handle_event(msg.CheckpointSaved(str(window.session.checkpoint_path), 1))
    assert window.discover_button.instate(["!disabled"]) and "Discovery needs" not in window.discover_tip.text()
    window.stop_button.invoke()
    wait_until(window, lambda: window.finished is not None)
    folder = window.session.folder
    window.new_session_button.invoke()
    assert window.discover_button.instate(["disabled"])
    assert window.open_session(str(folder))  # a session with a checkpoint: ready at once
    assert window.discover_button.instate(["!disabled"])


def test_on_a_short_window_with_the_trust_banner_the_log_shrinks_before_the_plots(window_factory, tk_root):
    # at 1280 x 720 with the banner shown the plots were ~60 px an axes and the log kept its lines
    from app.engine.trust_checks import TrustWarning
    from ui.main_window.plots_room import LOG_MIN_PX, PLOTS_FLOOR, PLOTS_MIN_HEIGHT, plots_height

    window = window_factory()
    tk_root.geometry("1264x656")
    long = "a detail that wraps over a few lines of the banner, as the real ones do; " * 3
    window.trust_banner.show([TrustWarning("few_images", "Too few training images", long, ("smaller_model", "pretrained"))])
    window.trust_banner.toggle_details()
    tk_root.update()
    assert window.trust_banner.winfo_ismapped()
    assert window.plots.winfo_height() >= PLOTS_FLOOR
    assert LOG_MIN_PX - 2 <= window.log.winfo_height() < window.log.winfo_reqheight()  # it gave up lines first
    assert window.progress.winfo_height() >= window.progress.winfo_reqheight()  # the bars stay whole
    assert window.status_var.get()  # the status bar keeps its line
    # the rule: the plots get what the banner, the bars and two lines of log leave, within bounds
    assert plots_height(900, 0, 200, 100) == PLOTS_MIN_HEIGHT
    assert plots_height(613, 190, 240, 106) == 613 - 190 - 134 - LOG_MIN_PX
    assert plots_height(400, 190, 240, 106) == PLOTS_FLOOR
