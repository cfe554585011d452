"""BatchNorm running statistics recomputed so that eval mode computes what was trained.

The failure this guards against (issue 11): a short guided run on a small folder trained a
BatchNorm network to 1.00 accuracy in train mode while eval mode (validation, checkpoint,
chooser, `evaluate`) sat at chance, because the running averages lagged behind the weights and
were taken over oversampled, unrepresentative batches.
"""

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from app.engine.batchnorm_recalibration import batchnorm_layers, recalibrate_batchnorm, recalibration_indices
from app.engine.config import FinetuneConfig, RunPaths, TrainConfig
from app.engine.finetune import finetune_round
from app.run.trainer import Trainer
from datasets import ImageFolderData, MaskStore
from models import build_model, model_spec
from tests.conftest import make_image_folder


def _folder_with_masks(tmp_path):
    images = make_image_folder(tmp_path / "images", classes=("a", "b", "c"), per_class=16, size=32)
    store = MaskStore(tmp_path / "masks")
    for relpath in ("a/a_000.png", "b/b_000.png", "c/c_000.png"):
        mask = np.zeros((32, 32), np.int8)
        mask[:, 12:] = 1
        store.save(relpath, mask)
    return images, tmp_path / "masks"


def _accuracy(model, dataset, train_mode):
    """Accuracy on the whole dataset in one batch, so train mode uses the data's own statistics."""
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    model.train(train_mode)
    batch = next(iter(DataLoader(dataset, batch_size=len(dataset))))
    with torch.no_grad():
        hits = (model(batch[0]).argmax(1) == batch[1]).float().mean().item()
    model.load_state_dict(saved)  # a train-mode forward moved the running statistics
    model.eval()
    return hits


def test_guided_training_eval_mode_matches_train_mode(tmp_path):
    # Without recalibration this run ends at eval accuracy 0.67 (lr 1e-2) / 0.33 (3e-2) with
    # train-mode accuracy 1.00: the running statistics lag behind the weights.
    images, masks = _folder_with_masks(tmp_path)
    config = TrainConfig(model="small_cnn", epochs=3, batch_size=8, lr=1e-2, guidance="rrr", seed=0)
    trainer = Trainer(config, FinetuneConfig(), RunPaths(str(images), masks_dir=str(masks)), emit=lambda event: None)
    trainer.run()
    assert trainer.history[-1]["train_n_annotated"] > 0  # guided steps took place
    train_mode = _accuracy(trainer.model, trainer.data.train, True)
    eval_mode = _accuracy(trainer.model, trainer.data.train, False)
    assert train_mode == 1.0
    assert eval_mode == pytest.approx(train_mode)
    assert trainer.history[-1]["val_accuracy"] == pytest.approx(1.0)


def test_finetune_candidate_eval_mode_matches_train_mode(tmp_path):
    images, masks = _folder_with_masks(tmp_path)
    spec = model_spec("small_cnn")
    data = ImageFolderData(images, spec.input_size, spec.mean, spec.std, masks_dir=masks)
    model = build_model("small_cnn", 3)
    for layer in batchnorm_layers(model):  # statistics far from anything the data produces
        layer.running_mean.fill_(5.0)
        layer.running_var.fill_(0.01)
    config = FinetuneConfig(lr=1e-2, max_steps=4, check_every=2, val_loss_rise=1e9, guidance_drop=1.0)
    result = finetune_round(
        model,
        train_data=data,
        val_loader=DataLoader(data, batch_size=64),
        guidance_name="rrr",
        lam=1.0,
        config=config,
        device=torch.device("cpu"),
    )
    candidate = result.candidate
    # Eval-mode outputs of the candidate agree with a train-mode forward of the same data.
    batch = next(iter(DataLoader(data, batch_size=len(data))))
    candidate.eval()
    with torch.no_grad():
        eval_logits = candidate(batch[0])
    assert _accuracy(candidate, data, False) == pytest.approx(_accuracy(candidate, data, True))
    assert torch.isfinite(eval_logits).all()


class _TwoLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.norm = nn.BatchNorm2d(4, momentum=0.3)
        self.drop = nn.Dropout(0.5)

    def forward(self, images):
        return self.drop(self.norm(self.conv(images))).mean(dim=(2, 3))


class _Images(torch.utils.data.Dataset):
    def __init__(self, n):
        self.images = torch.randn(n, 3, 8, 8, generator=torch.Generator().manual_seed(1)) * 3 + 2

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        return (self.images[index], 0)


def test_recalibration_computes_the_data_statistics_and_restores_the_model():
    model = _TwoLayer()
    model.train()
    data = _Images(40)
    weights = {k: v.clone() for k, v in model.named_parameters()}
    forwarded = recalibrate_batchnorm(model, data, device=torch.device("cpu"), max_images=1000, batch_size=40)
    assert forwarded == 40
    with torch.no_grad():
        features = model.conv(data.images)
    expected_mean = features.mean(dim=(0, 2, 3))
    expected_var = features.var(dim=(0, 2, 3), unbiased=True)
    assert torch.allclose(model.norm.running_mean, expected_mean, atol=1e-5)
    assert torch.allclose(model.norm.running_var, expected_var, rtol=1e-4)
    assert model.norm.momentum == 0.3 and model.training and model.drop.training
    assert all(torch.equal(v, weights[k]) for k, v in model.named_parameters())


def test_recalibration_is_bounded_and_skips_networks_without_batchnorm():
    assert recalibration_indices(10, 256) == list(range(10))
    sample = recalibration_indices(10_000, 256, seed=3)
    assert len(sample) == 256 and sample == sorted(set(sample)) and sample == recalibration_indices(10_000, 256, seed=3)
    assert recalibrate_batchnorm(nn.Linear(3, 2), _Images(5), device=torch.device("cpu")) == 0
