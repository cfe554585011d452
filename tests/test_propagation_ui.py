"""Propagation from a feedback round: the trainer answers Preview/ApplyPropagation while it waits
for paint (tests without Tk), and the brush window's "Apply to..." panel sends those commands and
shows the answers (Tk tests, marked gui)."""

from __future__ import annotations

import numpy as np
import pytest

from app.engine.config import FinetuneConfig, TrainConfig
from app.run import messages as msg
from app.run.session import Session
from app.run.trainer import Trainer
from datasets import MaskStore
from datasets.masks import RED, read_mask_meta

FAST_FINETUNE = FinetuneConfig(max_steps=2, check_every=1, val_loss_rise=100.0, guidance_drop=1.0)
CONFIG = TrainConfig(
    model="small_cnn",
    epochs=2,
    batch_size=8,
    lr=1e-3,
    guidance="rrr",
    lam=1.0,
    feedback_every=1,
    images_per_round=2,
    selection="entropy",
)


class PropagatingUser:
    """On FeedbackNeeded: paint red on the first image, run the given propagation commands one
    after another (each sent when the previous one's answer arrives), then fine-tune."""

    def __init__(self, trainer_factory, masks_dir, commands):
        self.events = []
        self.masks = MaskStore(masks_dir)
        self.commands = list(commands)  # callables: source relpath -> command
        self.source = None
        self.trainer = trainer_factory(self.on_event)

    def on_event(self, event):
        self.events.append(event)
        if isinstance(event, msg.FeedbackNeeded):
            item = event.items[0]
            height, width = item.image.shape[:2]
            mask = np.zeros((height, width), np.int8)
            mask[height - 6 :, width - 6 :] = RED  # "never the bottom-right corner"
            self.masks.save(item.relpath, mask)
            self.source = item.relpath
            self._next()
        elif isinstance(event, (msg.PropagationPreview, msg.PropagationApplied, msg.PropagationFailed)):
            self._next()
        elif isinstance(event, msg.FinetuneDone):
            self.trainer.submit(msg.Commit())

    def _next(self):
        if self.commands:
            self.trainer.submit(self.commands.pop(0)(self.source))
        else:
            self.trainer.submit(msg.StartFinetune((self.source,)))

    def of(self, kind):
        return [e for e in self.events if isinstance(e, kind)]


def _run(image_folder, tmp_path, commands):
    session = Session.create(tmp_path / "session", image_folder, None, CONFIG, FAST_FINETUNE)
    user = PropagatingUser(
        lambda emit: Trainer(session.train_config, session.finetune_config, session.run_paths(), emit=emit, session=session),
        session.masks_dir,
        commands,
    )
    user.trainer.run()  # in this thread: the commands are queued before the trainer waits
    return user, session


def test_preview_then_apply_to_all_during_a_round(image_folder, tmp_path):
    user, session = _run(
        image_folder,
        tmp_path,
        [
            lambda source: msg.PreviewPropagation((source,), "all"),
            lambda source: msg.ApplyPropagation((source,), "all"),
        ],
    )
    assert not user.of(msg.TrainingFailed) and not user.of(msg.PropagationFailed)
    train = user.trainer.data.train
    others = sorted(r for r in train.relpaths if r != user.source)
    preview = user.of(msg.PropagationPreview)[0]
    assert preview.sources == (user.source,) and preview.scope == "all"
    assert preview.count == len(train) - 1 == len(others)
    assert preview.relpaths == tuple(others) and preview.skipped_hand_painted == ()
    applied = user.of(msg.PropagationApplied)[0]
    assert (applied.written, applied.skipped_hand_painted) == (len(others), 0)
    for relpath in others:
        path = session.masks.path_for(relpath)
        assert path.is_file(), relpath
        meta = read_mask_meta(path)
        assert meta["source"] == "propagated" and meta["from"] == user.source and meta["scope"] == "all"
        mask = session.masks.load_array(relpath)
        assert mask[-1, -1] == RED and mask[0, 0] == 0  # the corner went along, nothing else
    assert read_mask_meta(session.masks.path_for(user.source)).get("source") != "propagated"
    # the round then fine-tunes on every mask and completes
    assert user.of(msg.FinetuneStarted)[0].n_annotated == len(train)
    decided = user.of(msg.RoundDecided)[0]
    assert decided.finetuned and decided.committed
    assert user.of(msg.TrainingFinished)[0].epoch == 2
    # order of events: the matrix, the round, then the answers while it waits
    kinds = [type(e) for e in user.events if not isinstance(e, msg.StateChanged)]
    assert kinds.index(msg.ReasonabilityReady) == kinds.index(msg.FeedbackNeeded) - 1
    assert (
        kinds.index(msg.FeedbackNeeded)
        < kinds.index(msg.PropagationPreview)
        < kinds.index(msg.PropagationApplied)
        < kinds.index(msg.FinetuneStarted)
    )


def test_class_scope_preview_counts_the_source_class(image_folder, tmp_path):
    user, _ = _run(image_folder, tmp_path, [lambda source: msg.PreviewPropagation((source,), "class")])
    train = user.trainer.data.train
    label = train.targets[train.index_of(user.source)]
    same_class = sorted(r for r, t in zip(train.relpaths, train.targets) if t == label and r != user.source)
    preview = user.of(msg.PropagationPreview)[0]
    assert preview.count == len(same_class) and preview.relpaths == tuple(same_class)
    assert not user.of(msg.PropagationApplied)  # a preview writes nothing
    assert user.trainer.data.train.masks.annotated() == [user.source]


def test_bad_propagation_is_reported_and_the_round_goes_on(image_folder, tmp_path):
    user, _ = _run(
        image_folder,
        tmp_path,
        [
            lambda source: msg.PreviewPropagation((source,), "everywhere"),  # no such scope
            lambda source: msg.ApplyPropagation(("a/not-an-image.png",), "all"),
        ],
    )
    failed = user.of(msg.PropagationFailed)
    assert len(failed) == 2 and all(f.user_error for f in failed)
    assert "everywhere" in failed[0].message and failed[0].scope == "everywhere"
    assert not user.of(msg.TrainingFailed)
    assert user.of(msg.RoundDecided)[0].finetuned  # the round still completed
    assert user.trainer.data.train.masks.annotated() == [user.source]


def test_reasonability_ready_counts_the_whole_small_training_set(image_folder, tmp_path):
    user, _ = _run(image_folder, tmp_path, [])
    ready = user.of(msg.ReasonabilityReady)
    assert len(ready) == 1 and (ready[0].round, ready[0].epoch) == (1, 1)
    matrix = ready[0].matrix
    train = user.trainer.data.train
    assert ready[0].n_train == len(train) == matrix.n_images  # pool bigger than the data
    assert sum(len(m) for m in matrix.members.values()) == len(train)
    assert sorted(r for m in matrix.members.values() for r in m) == sorted(train.relpaths)
    assert all(matrix.counts[cell] == len(matrix.members[cell]) for cell in matrix.counts)


class ScriptedUser:
    """On FeedbackNeeded: paint a red corner on every offered image, then send `script`'s
    commands one after another (each a callable of this user, sent when the previous command's
    answer arrives), then StartFinetune (`finetune` its options); Commit the candidate.
    `on_progress(user, event)` may answer PropagationProgress / FinetuneStep (e.g. Cancel)."""

    def __init__(self, make_trainer, masks_dir, script, finetune=None, on_progress=None):
        self.events = []
        self.masks = MaskStore(masks_dir)
        self.script = list(script)
        self.finetune = finetune or {}
        self.on_progress = on_progress
        self.painted = []
        self.trainer = make_trainer(self.on_event)

    def on_event(self, event):
        self.events.append(event)
        if isinstance(event, msg.FeedbackNeeded):
            for item in event.items:
                height, width = item.image.shape[:2]
                mask = np.zeros((height, width), np.int8)
                mask[height - 6 :, width - 6 :] = RED
                self.masks.save(item.relpath, mask)
                self.painted.append(item.relpath)
            self._next()
        elif isinstance(event, (msg.PropagationPreview, msg.PropagationApplied, msg.PropagationFailed)):
            self._next()
        elif isinstance(event, (msg.PropagationProgress, msg.FinetuneStep)) and self.on_progress is not None:
            self.on_progress(self, event)
        elif isinstance(event, msg.FinetuneDone):
            self.trainer.submit(msg.Commit())

    def _next(self):
        while self.script:
            command = self.script.pop(0)(self)
            self.trainer.submit(command)
            if not isinstance(command, msg.MarkNotThis):  # answered only when it fails
                return
        self.trainer.submit(msg.StartFinetune(tuple(self.painted), **self.finetune))

    @property
    def source(self):
        return self.painted[0]

    def last(self, kind):
        return self.of(kind)[-1]

    def of(self, kind):
        return [e for e in self.events if isinstance(e, kind)]


def _scripted(image_folder, tmp_path, script, *, session=True, finetune_config=FAST_FINETUNE, **options):
    """Run a two-epoch trainer with a ScriptedUser, in a session or (session=False) in a bare run
    with no negatives folder; returns (user, masks folder)."""
    if session:
        made = Session.create(tmp_path / "session", image_folder, None, CONFIG, finetune_config)
        paths, masks_dir = made.run_paths(), made.masks_dir
    else:
        from app.engine.config import RunPaths

        masks_dir = tmp_path / "masks"
        paths, made = RunPaths(train_dir=str(image_folder), masks_dir=str(masks_dir)), None
    assert (paths.negatives_dir is None) == (not session)
    user = ScriptedUser(
        lambda emit: Trainer(CONFIG, finetune_config, paths, emit=emit, session=made), masks_dir, script, **options
    )
    user.trainer.run()
    return user, masks_dir


def _not_this_corner(user):
    """A "not this" correction on an image nobody painted: its top-left corner."""
    other = next(r for r in user.trainer.data.train.relpaths if r not in user.painted)
    region = np.zeros((8, 8), bool)
    region[:3, :3] = True
    user.not_this = other
    return msg.MarkNotThis(other, region)


@pytest.mark.parametrize("session", [True, False], ids=["session", "no-negatives-folder"])
def test_not_this_is_kept_and_the_next_preview_learns_from_it(image_folder, tmp_path, session):
    user, _ = _scripted(
        image_folder,
        tmp_path,
        [
            lambda u: msg.PreviewPropagation((u.source,), "content"),
            _not_this_corner,
            lambda u: msg.PreviewPropagation((u.source,), "content"),
        ],
        session=session,
    )
    assert not user.of(msg.PropagationFailed) and not user.of(msg.TrainingFailed)
    first, second = user.of(msg.PropagationPreview)
    # the answers name the request's sources, though the locator learnt from both painted images
    assert first.sources == second.sources == (user.source,)
    assert set(first.learned_from) == set(user.painted) and len(user.painted) == 2
    assert (first.corrections, second.corrections) == (0, 1)
    assert user.trainer.validation.negative_store().annotated() == [user.not_this]
    if session:
        assert (tmp_path / "session" / "negatives").is_dir()


def test_apply_writes_the_reviewed_plan_without_searching_again(image_folder, tmp_path):
    def apply_reviewed(u):
        preview = u.last(msg.PropagationPreview)
        u.dropped = preview.relpaths[0]
        u.events_before_apply = len(u.events)
        return msg.ApplyPropagation((u.source,), "class", (u.dropped,), plan_id=preview.plan_id)

    user, masks_dir = _scripted(
        image_folder,
        tmp_path,
        [lambda u: msg.PreviewPropagation((u.source,), "class"), apply_reviewed],
    )
    preview, applied = user.last(msg.PropagationPreview), user.last(msg.PropagationApplied)
    assert preview.plan_id > 0 and preview.count >= 2
    assert not applied.searched
    assert applied.written == preview.count - 1 and user.dropped not in applied.relpaths
    assert not MaskStore(masks_dir).has(user.dropped)
    after = user.events[user.events_before_apply :]
    stages = {e.stage for e in after if isinstance(e, msg.PropagationProgress)}
    assert stages == {"writing"}  # no "finding": the images were not looked through again
    assert [e.done for e in after if isinstance(e, msg.PropagationProgress)][-1] == applied.written


def test_cancel_stops_an_apply_between_images(image_folder, tmp_path):
    def cancel_at_first_write(u, event):
        if isinstance(event, msg.PropagationProgress) and event.stage == "writing" and event.done == 1:
            u.trainer.submit(msg.CancelPropagation())

    user, masks_dir = _scripted(
        image_folder,
        tmp_path,
        [
            lambda u: msg.PreviewPropagation((u.source,), "all"),
            lambda u: msg.ApplyPropagation((u.source,), "all", plan_id=u.last(msg.PropagationPreview).plan_id),
        ],
        on_progress=cancel_at_first_write,
    )
    failed = user.last(msg.PropagationFailed)
    total = user.last(msg.PropagationPreview).count
    assert failed.cancelled and failed.message == f"Cancelled: 1 of {total} masks were written, the others not."
    assert not user.of(msg.PropagationApplied)
    assert len(MaskStore(masks_dir).annotated()) == len(user.painted) + 1
    assert user.of(msg.RoundDecided)[0].finetuned  # the round went on


def test_a_shorter_round_and_stop_round_keep_the_candidate_for_the_chooser(image_folder, tmp_path):
    def stop_round_at_step_2(u, event):
        if isinstance(event, msg.FinetuneStep) and event.step == 2:
            u.trainer.submit(msg.StopRound())

    long_round = FinetuneConfig(max_steps=400, check_every=100, val_loss_rise=100.0, guidance_drop=1.0, red_share_drop=1.0)
    user, _ = _scripted(
        image_folder,
        tmp_path,
        [],
        finetune_config=long_round,
        finetune={"max_steps": 40},
        on_progress=stop_round_at_step_2,
    )
    assert user.of(msg.FinetuneStarted)[0].max_steps == 40  # the shorter round chosen
    done = user.last(msg.FinetuneDone)
    assert done.report.steps == 2 and done.report.stop_reason == "cancelled"
    assert user.last(msg.RoundDecided).committed  # the chooser's decision counted
    finished = user.last(msg.TrainingFinished)
    assert not finished.stopped and finished.epoch == 2  # the run went on


# ------------------------------------------------------------------------ the panel (Tk)
SIDE = 16


def _item(relpath, seed, label="3"):
    rng = np.random.default_rng(seed)
    return msg.FeedbackItem(
        relpath=relpath,
        image=rng.integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8),
        saliency=rng.random((8, 8)).astype(np.float32),
        true_label=label,
        predicted_label=label,
        confidence=0.9,
        reason="entropy 1.00",
    )


@pytest.fixture
def brush(tk_root, tmp_path):
    """A BrushWindow with the panel, on two images; commands land in `window.sent`."""
    from ui.brush.window import BrushWindow

    store = MaskStore(tmp_path / "masks")
    sent = []
    window = BrushWindow(
        tk_root, [_item("3/a.png", 0), _item("5/b.png", 1, label="5")], store, canvas_size=320, submit=sent.append
    )
    window.geometry("+0+0")
    window.update()
    window.sent, window.store = sent, store
    yield window
    if window.winfo_exists():
        window.destroy()


def _paint_red(window, rows=slice(12, 16), cols=slice(12, 16)):
    """Red in the mask on screen, as strokes would leave it (the panel saves it)."""
    window.mask[rows, cols] = RED


@pytest.mark.gui
def test_preview_without_red_asks_for_paint_and_sends_nothing(brush):
    panel = brush.propagation
    assert panel is not None and panel.apply_button.instate(["disabled"])
    brush.propagation.preview_button.invoke()
    assert brush.sent == []
    assert "Paint red on this image first" in panel.status_label.cget("text")


@pytest.mark.gui
def test_preview_and_apply_send_the_commands_and_show_the_answers(brush):
    panel = brush.propagation
    _paint_red(brush)
    panel.scope_buttons["class"].invoke()
    assert panel.scope_buttons["class"].cget("text") == "Images of class 3"
    panel.preview_button.invoke()
    assert brush.sent == [msg.PreviewPropagation(("3/a.png",), "class")]
    saved = brush.store.load_array("3/a.png")  # the mask was saved before asking
    assert saved is not None and (saved == RED).sum() == 16
    assert panel.preview_button.instate(["disabled"]) and panel.apply_button.instate(["disabled"])

    targets = ("3/c.png", "3/d.png", "3/e.png")
    panel.show_preview(msg.PropagationPreview(("3/a.png",), "class", 3, targets, ("3/f.png",)))
    brush.update()
    text = panel.status_label.cget("text")
    assert text.startswith("3 images would get this red") and "1 image you painted" in text
    assert panel.listbox.get(0, "end") == targets
    assert panel.apply_button.instate(["!disabled"])

    panel.apply_button.invoke()
    assert brush.sent[-1] == msg.ApplyPropagation(("3/a.png",), "class")
    panel.show_applied(msg.PropagationApplied(("3/a.png",), "class", 3, 1, targets))
    assert panel.status_label.cget("text").startswith("Wrote 3 propagated masks")
    assert panel.apply_button.instate(["disabled"])  # applying again needs a new preview
    assert panel.preview_button.instate(["!disabled"])


@pytest.mark.gui
def test_changing_scope_or_image_drops_the_preview(brush):
    panel = brush.propagation
    _paint_red(brush)
    panel.scope_buttons["all"].invoke()
    panel.preview_button.invoke()
    panel.show_preview(msg.PropagationPreview(("3/a.png",), "all", 2, ("5/b.png", "5/c.png")))
    assert panel.apply_button.instate(["!disabled"])
    panel.scope_buttons["similar"].invoke()
    assert panel.apply_button.instate(["disabled"]) and panel.listbox.size() == 0
    assert panel.request_apply() is False and brush.sent == [msg.PreviewPropagation(("3/a.png",), "all")]
    brush.next()
    assert panel.relpath == "5/b.png" and panel.scope_buttons["class"].cget("text") == "Images of class 5"


@pytest.mark.gui
def test_failure_is_shown_and_the_panel_stays_usable(brush):
    panel = brush.propagation
    _paint_red(brush)
    panel.scope_buttons["all"].invoke()
    panel.preview_button.invoke()
    panel.show_failed(msg.PropagationFailed(("3/a.png",), "all", "no model, no similarity"))
    assert panel.status_label.cget("text") == "no model, no similarity"
    assert panel.preview_button.instate(["!disabled"])


@pytest.mark.gui
def test_applied_masks_reach_the_rounds_other_images(brush):
    """An image of this round that got a propagated mask shows it when visited (again)."""
    brush.next()
    brush.previous()  # 5/b.png was seen without a mask
    _paint_red(brush)
    brush.propagation.preview_button.invoke()
    propagated = np.zeros((SIDE, SIDE), np.int8)
    propagated[12:, 12:] = RED
    brush.store.save("5/b.png", propagated, meta={"source": "propagated", "from": "3/a.png"})
    brush.propagation.show_preview(msg.PropagationPreview(("3/a.png",), "all", 1, ("5/b.png",)))
    brush.propagation.apply_button.invoke()
    brush.propagation.show_applied(msg.PropagationApplied(("3/a.png",), "all", 1, 0, ("5/b.png",)))
    brush.next()
    assert np.array_equal(brush.mask, propagated)
    brush.previous()  # leaving it unchanged keeps it a propagated mask
    assert brush.store.meta("5/b.png")["source"] == "propagated"


@pytest.mark.gui
def test_main_window_routes_answers_to_the_open_panel(tk_root, tmp_path):
    from ui.main_window.window import MainWindow

    window = MainWindow(tk_root, sessions_root=str(tmp_path / "sessions"), destroy_root_on_close=False)
    try:

        class Panel:
            shown = []

            def winfo_exists(self):
                return True

            def show_preview(self, event):
                self.shown.append(event)

            show_applied = show_failed = show_preview

        class Brush:
            propagation = Panel()

        window.brush_window = Brush()
        events = [
            msg.PropagationPreview(("a.png",), "all", 2, ("b.png", "c.png")),
            msg.PropagationApplied(("a.png",), "all", 2, 0, ("b.png", "c.png")),
            msg.PropagationFailed(("a.png",), "all", "nope"),
        ]
        for event in events:
            window.handle_event(event)
        assert Panel.shown == events
        window.brush_window = None
        window.handle_event(events[0])  # no brush window: only a log line, no error
        assert window.event_counts["PropagationPreview"] == 2
    finally:
        window.teardown()


@pytest.mark.gui
def test_empty_similar_preview_says_why_and_offers_no_apply(brush):
    panel = brush.propagation
    _paint_red(brush)
    panel.scope_buttons["similar"].invoke()
    panel.preview_button.invoke()
    panel.show_preview(msg.PropagationPreview(("3/a.png",), "similar", 0, ()))
    text = panel.status_label.cget("text")
    assert text.startswith("0 images would get this red") and "30% of its saliency" in text
    assert panel.apply_button.instate(["disabled"]) and panel.listbox.size() == 0


@pytest.mark.gui
def test_content_is_the_default_scope_and_its_preview_opens_the_finds(brush):
    panel = brush.propagation
    assert panel.scope == "content"
    _paint_red(brush)
    panel.preview_button.invoke()
    assert brush.sent[-1] == msg.PreviewPropagation(("3/a.png",), "content")
    region = np.zeros((20, 20), bool)
    region[2:6, 2:6] = True
    item = msg.PreviewItem("5/b.png", np.zeros((20, 20, 3), np.uint8), region, 0.93)
    panel.show_preview(msg.PropagationPreview(("3/a.png",), "content", 1, ("5/b.png",), (), (item,), 30, 0.6))
    window = panel.content_window
    assert window is not None and window.winfo_exists() and set(window.tiles) == {"5/b.png"}
    assert "Found in 1 of 30 images" in window.summary_label.cget("text")
    window.apply_button.invoke()
    assert brush.sent[-1] == msg.ApplyPropagation(("3/a.png",), "content", ())


@pytest.mark.gui
def test_panel_comes_back_after_a_preview_learnt_from_several_images_and_cancels(brush):
    """Issue 21: with 2+ painted images the answer named more sources than asked, and the panel
    stayed greyed out for the rest of the round."""
    panel = brush.propagation
    _paint_red(brush)
    panel.scope_buttons["all"].invoke()
    panel.preview_button.invoke()
    assert panel.preview_button.instate(["disabled"]) and panel.cancel_button.instate(["!disabled"])
    panel.show_progress(msg.PropagationProgress(("3/a.png",), "all", "finding", 1, 4))
    assert panel.status_label.cget("text") == "Looking through the images: 1 of 4..."
    assert panel.progress_bar.cget("value") == pytest.approx(0.25)
    preview = msg.PropagationPreview(("3/a.png",), "all", 1, ("5/b.png",), plan_id=3, learned_from=("3/a.png", "5/b.png"))
    panel.show_preview(preview)
    assert panel.preview_button.instate(["!disabled"]) and panel.apply_button.instate(["!disabled"])
    assert all(b.instate(["!disabled"]) for b in panel.scope_buttons.values())
    panel.apply_button.invoke()
    assert brush.sent[-1] == msg.ApplyPropagation(("3/a.png",), "all", plan_id=3)  # the reviewed plan
    panel.show_progress(msg.PropagationProgress(("3/a.png",), "all", "writing", 1, 2))
    assert panel.status_label.cget("text") == "Writing the masks: 1 of 2..."
    panel.cancel_button.invoke()
    assert brush.sent[-1] == msg.CancelPropagation()
    panel.show_failed(
        msg.PropagationFailed(("3/a.png",), "all", "Cancelled: 1 of 2 masks were written, the others not.", cancelled=True)
    )
    assert panel.status_label.cget("foreground") == "" and panel.preview_button.instate(["!disabled"])
    assert panel.cancel_button.instate(["disabled"])
