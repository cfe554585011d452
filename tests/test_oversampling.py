"""Tests for app/engine/oversampling.py: masked images drawn more often, the plain shuffle otherwise."""

from collections import Counter

import pytest
import torch
from torch.utils.data import RandomSampler

from app.engine.oversampling import AnnotatedOversampler, annotated_share


class Images:
    """A stand-in data set: only its length and which images have masks matter here."""

    def __init__(self, n: int, annotated=()) -> None:
        self.n = n
        self.annotated = list(annotated)

    def __len__(self) -> int:
        return self.n

    def annotated_indices(self) -> list:
        return list(self.annotated)


def draws(sampler, epochs: int) -> list:
    return [index for _ in range(epochs) for index in sampler]


@pytest.mark.parametrize("annotated, factor", [((), 10.0), (range(40), 10.0), ((1, 2, 3), 1.0)])
def test_plain_shuffle_when_there_is_nothing_to_favour(annotated, factor):
    images = Images(40, annotated)
    sampler = AnnotatedOversampler(images, factor, torch.Generator().manual_seed(7))
    reference = RandomSampler(images, generator=torch.Generator().manual_seed(7))
    assert draws(sampler, 3) == draws(reference, 3)  # draw for draw, so runs stay reproducible


def test_masked_images_make_up_the_expected_share_of_draws():
    n, annotated, factor = 1000, list(range(0, 1000, 20)), 10.0  # 5 % masked
    sampler = AnnotatedOversampler(Images(n, annotated), factor, torch.Generator().manual_seed(0))
    assert len(sampler) == n  # an epoch is as many steps as a plain one
    seen = draws(sampler, 40)
    share = sum(index in set(annotated) for index in seen) / len(seen)
    expected = annotated_share(len(annotated), n, factor)
    assert expected == pytest.approx(500 / 1450)
    assert share == pytest.approx(expected, abs=0.01)
    counts = Counter(seen)
    per_masked = sum(counts[i] for i in annotated) / len(annotated)
    per_other = sum(c for i, c in counts.items() if i not in set(annotated)) / (n - len(annotated))
    assert per_masked / per_other == pytest.approx(factor, rel=0.05)
    assert all(0 <= index < n for index in seen)


def test_masks_painted_during_a_run_count_from_the_next_epoch():
    images = Images(100)
    sampler = AnnotatedOversampler(images, 50.0, torch.Generator().manual_seed(1))
    first = list(sampler)
    assert first.count(3) <= 5
    images.annotated = [3]  # the user painted image 3
    later = draws(sampler, 5)
    assert later.count(3) > 5 * 20  # expected 5 x 100 x 50/149, about 168


def test_same_seed_same_draws_and_bad_factor_rejected():
    images = Images(30, [0, 1])
    one = AnnotatedOversampler(images, 4.0, torch.Generator().manual_seed(3))
    two = AnnotatedOversampler(images, 4.0, torch.Generator().manual_seed(3))
    assert draws(one, 2) == draws(two, 2)
    with pytest.raises(ValueError, match=">= 1"):
        AnnotatedOversampler(images, 0.5)


def test_annotated_share_bounds():
    assert annotated_share(0, 10, 5.0) == 0.0
    assert annotated_share(10, 10, 5.0) == 1.0
    assert annotated_share(1, 10, 1.0) == pytest.approx(0.1)


def test_trainer_loader_batches_equal_the_plain_shuffled_loader_without_masks(image_folder):
    # The loader must also draw its base seed from the generator, as DataLoader(shuffle=True)
    # does, or unmasked runs would silently train on another order than before.
    from torch.utils.data import DataLoader

    from app.engine.config import FinetuneConfig, RunPaths, TrainConfig
    from app.run.trainer import Trainer

    trainer = Trainer(
        TrainConfig(epochs=1, batch_size=4, seed=5, device="cpu"),
        FinetuneConfig(),
        RunPaths(train_dir=str(image_folder)),
        emit=lambda event: None,
    )
    trainer._setup()
    plain = DataLoader(trainer.data.train, batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(5))
    for _ in range(2):  # two epochs
        for ours, theirs in zip(trainer.train_loader, plain, strict=True):
            assert torch.equal(ours[0], theirs[0]) and torch.equal(ours[1], theirs[1])
