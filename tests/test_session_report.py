"""The session report (app.report, `main.py report`): what it says about a session, that it is
self-contained, and that a real browser (headless Chromium) renders it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import numpy as np
import pytest
import torch
from PIL import Image

from app.cli.main import main
from app.engine.checkpoint import save_checkpoint
from app.engine.finetune_report import FinetuneReport
from app.report import gather, write_report
from app.run import messages as msg
from app.run.round_strips import load_round_strip, save_round_strip
from app.run.session import Session
from models import build_model

SIDE = 16
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def finetune_report(**changes):
    values = dict(
        stop_reason="guidance_drop",
        steps=17,
        n_annotated=2,
        val_loss_before=0.9,
        val_loss_after=0.8,
        val_accuracy_before=0.5,
        val_accuracy_after=0.625,
        guidance_before=1.0,
        guidance_after=0.2,
        red_share_before=0.4,
        red_share_after=0.1,
        green_share_before=0.1,
        green_share_after=0.3,
        seconds=3.0,
        broken_accuracy_before=0.25,
        broken_accuracy_after=0.75,
        broken_found=4,
        test_accuracy_before=0.5,
        test_accuracy_after=0.75,
    )
    values.update(changes)
    return FinetuneReport(**values)


@pytest.fixture
def session(tmp_path):
    """A session with two epochs, a committed and a rejected round, panels for round 1 and a
    mask propagated from round 1's painted image; no training needed."""
    root = tmp_path / "data"
    rng = np.random.default_rng(0)
    for label in ("cat", "dog"):
        (root / label).mkdir(parents=True)
        for i in range(5):
            Image.fromarray(rng.integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)).save(root / label / f"{label}_{i}.png")
    session = Session.create(tmp_path / "session", root)
    torch.manual_seed(0)
    history = [
        {"epoch": 1, "train_loss": 0.7, "val_loss": 0.69, "val_accuracy": 0.5, "val_broken_accuracy": 0.4},
        {"epoch": 2, "train_loss": 0.6, "val_loss": 0.65, "val_accuracy": 0.625, "val_broken_accuracy": 0.7},
    ]
    save_checkpoint(
        session.checkpoint_path,
        build_model("small_cnn", 2),
        model_name="small_cnn",
        classes=["cat", "dog"],
        input_size=SIDE,
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        epoch=2,
        history=history,
    )
    painted = np.zeros((SIDE, SIDE), np.int8)
    painted[:4, :4] = 1
    painted[8:, 8:] = -1
    session.masks.save("cat/cat_0.png", painted)
    session.masks.save("dog/dog_1.png", painted, {"source": "propagated", "from": "cat/cat_0.png"})
    image = rng.integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)
    saliency = rng.random((SIDE, SIDE)).astype(np.float32)
    save_round_strip(
        session.folder,
        1,
        [msg.Comparison("cat/cat_0.png", image, painted, saliency, saliency[::-1], "cat", "dog", "cat", 0.6, 0.8)],
        session.masks,
    )
    for number, decision, report in ((1, "commit", finetune_report()), (2, "reject", finetune_report(val_accuracy_after=0.4))):
        session.append_history(
            {
                "round": number,
                "epoch": number,
                "images": ["cat/cat_0.png"] if number == 1 else ["dog/dog_3.png"],
                "decision": decision,
                "n_annotated_total": 2,
                "report": report.to_dict(),
                "time": "2026-12-07T10:00:00",
            }
        )
    return session


def test_round_panels_round_trip(session):
    panels, masks = load_round_strip(session.folder, 1)
    assert [p["relpath"] for p in panels] == ["cat/cat_0.png"]
    assert panels[0]["before"] == ["dog", 0.6] and panels[0]["mask"].shape == (SIDE, SIDE)
    assert masks == {"painted": 1, "propagated": 1}
    assert load_round_strip(session.folder, 2) == ([], None)


def test_facts_of_a_session(session):
    facts = gather(session.folder)
    assert [r.decision for r in facts.rounds] == ["commit", "reject"]
    assert facts.rounds[0].propagated == 1 and facts.rounds[1].propagated == 0
    assert facts.mask_sources == {"painted": 1, "propagated": 1}
    assert facts.confusion is not None and facts.confusion.classes == ["cat", "dog"]
    assert sum(map(sum, facts.confusion.matrix)) == 2  # 20 % of 10 images, the trainer's split


def test_the_report_is_self_contained_and_says_what_happened(session, tmp_path, capsys):
    out = tmp_path / "report.html"
    assert main(["report", str(session.folder), "--out", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["out"] == str(out)
    text = out.read_text(encoding="utf-8")
    sources = re.findall(r'(?:src|href)="([^"]*)"', text)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "<script" not in text and "@import" not in text and "url(" not in text
    for expected in (
        "Round 1",
        "committed",
        "Round 2",
        "rejected",
        "Fine-tuned on 2 masks: 1 painted by hand, 1 propagated, 0 imported.",  # round 1, counted then
        "0 propagated masks now name this round's images",  # round 2: not counted then, what the masks say now
        "50.0 % → 62.5 %",  # validation accuracy of round 1
        "25.0 % → 75.0 %",  # shortcut-broken validation
        "guidance loss fell past the target",
        "17 steps",
        "confusion matrix",
    ):
        assert expected in text, expected
    assert len(re.findall(r"<img ", text)) == 1 + 3  # the curves and one painted/before/after panel


@pytest.fixture(scope="module")
def chromium():
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("headless Chromium is not installed (make system-deps installs the Debian package)")
    return browser


def test_the_report_renders_in_headless_chromium(session, tmp_path, chromium):
    out = write_report(session.folder, tmp_path / "report.html")
    profile = tmp_path / "profile"
    command = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}"]
    dom = subprocess.run(command + ["--dump-dom", out.as_uri()], capture_output=True, text=True, timeout=120, check=True).stdout
    assert dom.count('class="round"') == 2 and "Session report" in dom
    shot = tmp_path / "shot.png"
    subprocess.run(
        command + [f"--screenshot={shot}", "--window-size=1000,1400", out.as_uri()], capture_output=True, timeout=120, check=True
    )
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=np.int16)
    assert pixels.shape == (1400, 1000, 3)
    assert (np.abs(np.diff(pixels, axis=0)).sum(axis=2) > 60).mean() > 0.005  # text and pictures, not a blank page
    assert ((pixels[..., 1] - pixels[..., 0]) > 60).any()  # the green of the painted panel or a badge was drawn


def test_a_session_without_checkpoint_or_rounds_still_reports(session, tmp_path):
    session.checkpoint_path.unlink()
    session.history_path.unlink()
    out = write_report(session.folder, tmp_path / "empty.html")
    text = out.read_text(encoding="utf-8")
    assert "the session has no checkpoint yet" in text and "No feedback round yet" in text
    assert "confusion matrix" not in text
