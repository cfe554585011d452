"""The product's claim, end to end through the CLI: masks move a model off the demo's shortcut.

Trains the small CNN on the demo data for 6 epochs (the shortcut dominates that early: measured
0.27 decoy-free test accuracy plain) and checks the direction with a margin:

- with the truth masks (red over the swatch) of every training image and the defaults (RRR
  lambda 10 + counterexamples): measured 0.83;
- with the truth masks of only 5 % of the training images (54, the subset
  bench/mask_fraction.py draws for seed 0) and the defaults (masked images drawn 10x as often,
  counterexamples for the CE, the penalty on the painted images): measured 0.694 against plain
  0.337 (2 threads); over seeds 0-4 the defaults gain 7-45 points (README).

Since BatchNorm statistics are recalibrated before every evaluation (issue 11,
app/engine/batchnorm_recalibration.py), eval mode computes what was trained, and both numbers rose:
seed 0, 2 threads, plain 0.646, 5 % masked 0.769 (+0.12), every image masked 0.889 (+0.24).
Part of the old gap was the plain model's lagging running statistics. The 5 % margin is
therefore 0.08 (every image: still 0.15).
"""

import contextlib
import io
import json
import random
import shutil

import pytest

from app.cli.main import main

EPOCHS = "6"
FIVE_PERCENT_MARGIN = 0.08  # measured +0.12 on seed 0 with recalibrated BatchNorm statistics


def _train_and_test(demo_data, out, *extra) -> float:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = main(
            [
                "train",
                "--data",
                str(demo_data / "train"),
                "--val",
                str(demo_data / "val"),
                "--epochs",
                EPOCHS,
                "--seed",
                "0",
                "--out",
                str(out),
                *extra,
            ]
        )
    assert code == 0
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["evaluate", "--checkpoint", str(out / "model.pt"), "--data", str(demo_data / "test")]) == 0
    return json.loads(printed.getvalue())["accuracy"]


@pytest.fixture(scope="module", autouse=True)
def two_threads():
    """Results depend on the thread count (float sums in another order); pin the measured one."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def plain_accuracy(demo_data, tmp_path_factory, two_threads) -> float:
    return _train_and_test(demo_data, tmp_path_factory.mktemp("plain"), "--guidance", "none")


def _masks_of_a_fraction(demo_data, fraction: float, seed: int, out):
    """The truth masks of a seeded random `fraction` of the training images (as the bench)."""
    truth = demo_data / "truth" / "train"
    masks = sorted(path.relative_to(truth) for path in truth.rglob("*.png"))
    for relpath in random.Random(seed).sample(masks, round(fraction * len(masks))):
        (out / relpath).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(truth / relpath, out / relpath)
    return out


@pytest.mark.slow
def test_masks_on_every_image_beat_plain_on_the_decoy_free_split(demo_data, tmp_path, plain_accuracy):
    guided = _train_and_test(demo_data, tmp_path / "guided", "--guidance", "rrr", "--masks", str(demo_data / "truth" / "train"))
    assert guided >= plain_accuracy + 0.15, f"guided {guided:.3f} vs plain {plain_accuracy:.3f}"


@pytest.mark.slow
def test_masks_on_five_percent_of_the_images_beat_plain(demo_data, tmp_path, plain_accuracy):
    masks = _masks_of_a_fraction(demo_data, 0.05, seed=0, out=tmp_path / "masks")
    assert len(list(masks.rglob("*.png"))) == 54
    guided = _train_and_test(demo_data, tmp_path / "guided", "--masks", str(masks))
    assert guided >= plain_accuracy + FIVE_PERCENT_MARGIN, f"5 % masked {guided:.3f} vs plain {plain_accuracy:.3f}"
