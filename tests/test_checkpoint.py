"""Checkpoints: self-describing, atomic, weights_only-loadable, clear errors on mismatch."""

import pytest
import torch

from app.engine.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from app.errors import CheckpointError
from models import build_model


def _save(path, model, classes=("a", "b", "c"), **extra):
    return save_checkpoint(
        path,
        model,
        model_name="small_cnn",
        classes=classes,
        input_size=32,
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        epoch=3,
        train_config={"model": "small_cnn", "lr": 0.001},
        metrics={"val_accuracy": 0.5},
        history=[{"epoch": 1, "val_loss": 1.0}],
        **extra,
    )


def test_round_trip_restores_weights_and_description(tmp_path):
    model = build_model("small_cnn", 3)
    optimizer = torch.optim.Adam(model.parameters())
    path = _save(tmp_path / "run" / "model.pt", model, optimizer=optimizer)
    checkpoint = load_checkpoint(path)
    assert checkpoint.model_name == "small_cnn"
    assert checkpoint.classes == ["a", "b", "c"]
    assert checkpoint.input_size == 32 and checkpoint.epoch == 3
    assert checkpoint.mean == (0.5, 0.5, 0.5)
    assert checkpoint.train_config["lr"] == 0.001
    assert checkpoint.history == [{"epoch": 1, "val_loss": 1.0}]
    assert checkpoint.optimizer_state is not None
    rebuilt = model_from_checkpoint(checkpoint)
    for name, tensor in model.state_dict().items():
        assert torch.equal(rebuilt.state_dict()[name], tensor), name


def test_write_is_atomic_and_leaves_no_temp_files(tmp_path):
    model = build_model("small_cnn", 3)
    path = _save(tmp_path / "model.pt", model)
    _save(path, model)  # overwrite in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]


def test_checkpoint_loads_with_weights_only(tmp_path):
    path = _save(tmp_path / "model.pt", build_model("small_cnn", 3))
    payload = torch.load(path, weights_only=True)  # raises if anything but plain data is inside
    assert payload["format_version"] == 1


def test_other_architecture_or_classes_get_clear_errors(tmp_path):
    checkpoint = load_checkpoint(_save(tmp_path / "model.pt", build_model("small_cnn", 3)))
    with pytest.raises(CheckpointError, match="'small_cnn' model, not 'resnet18'"):
        checkpoint.check_compatible(model_name="resnet18")
    with pytest.raises(CheckpointError, match="3 classes, the data has 2"):
        checkpoint.check_compatible(classes=["a", "b"])
    with pytest.raises(CheckpointError, match="other class names"):
        checkpoint.check_compatible(classes=["a", "b", "x"])
    checkpoint.check_compatible(model_name="small_cnn", classes=["a", "b", "c"])


def test_missing_garbage_and_bare_state_dict_files(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_checkpoint(garbage)
    bare = tmp_path / "bare.pt"
    torch.save(build_model("small_cnn", 3).state_dict(), bare)
    with pytest.raises(CheckpointError, match="bare state_dict"):
        load_checkpoint(bare)


def test_weights_of_wrong_shape_are_reported(tmp_path):
    checkpoint = load_checkpoint(_save(tmp_path / "model.pt", build_model("small_cnn", 3)))
    checkpoint.classes = ["a", "b"]  # claims 2 classes, weights have 3
    with pytest.raises(CheckpointError, match="do not fit"):
        model_from_checkpoint(checkpoint)
