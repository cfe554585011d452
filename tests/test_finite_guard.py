"""No NaN/inf (or exploded) weights are ever saved, committed or offered."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from app.engine.checkpoint import save_checkpoint
from app.engine.config import FinetuneConfig
from app.engine.finetune import finetune_round
from app.engine.finetune_report import STOP_NON_FINITE
from app.engine.finite_guard import NonFiniteModelError, parameters_ok, weights_problem
from datasets import ImageFolderData, MaskStore
from datasets.atomic_files import finite_or_none
from models import build_model, model_spec


def test_weights_problem_names_nan_and_exploded_weights():
    model = build_model("small_cnn", 2)
    assert weights_problem(model) is None and parameters_ok(model)
    first = next(model.parameters())
    with torch.no_grad():
        first[0].fill_(1e30)
    assert "reached 1e+30" in weights_problem(model) and not parameters_ok(model)
    with torch.no_grad():
        first.fill_(float("nan"))
    assert "non-finite" in weights_problem(model) and not parameters_ok(model)


def test_save_checkpoint_refuses_nan_and_keeps_the_old_file(tmp_path):
    model = build_model("small_cnn", 2)
    path = tmp_path / "model.pt"
    kwargs = dict(model_name="small_cnn", classes=["a", "b"], input_size=32, mean=(0, 0, 0), std=(1, 1, 1), epoch=1)
    save_checkpoint(path, model, **kwargs)
    before = path.read_bytes()
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    with pytest.raises(NonFiniteModelError, match="not saving"):
        save_checkpoint(path, model, **kwargs)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def test_a_diverging_round_falls_back_to_finite_weights(image_folder, tmp_path):
    spec = model_spec("small_cnn")
    store = MaskStore(tmp_path / "masks")
    mask = np.zeros((32, 32), np.int8)
    mask[:8, :8] = 1
    store.save("cat/cat_000.png", mask)
    data = ImageFolderData(image_folder, spec.input_size, spec.mean, spec.std, masks_dir=tmp_path / "masks")
    model = build_model("small_cnn", 2)
    original = {k: v.clone() for k, v in model.state_dict().items()}
    result = finetune_round(
        model,
        train_data=data,
        val_loader=DataLoader(data, batch_size=64),
        guidance_name="rrr",
        lam=1.0,
        config=FinetuneConfig(lr=1e6, max_steps=10, check_every=2),
        device=torch.device("cpu"),
        head_scale=1.0,  # the round's start is then the model's own weights
    )
    assert result.report.stop_reason == STOP_NON_FINITE
    assert weights_problem(result.candidate) is None
    for key, value in result.candidate.state_dict().items():  # nothing checked good: the model's own
        assert torch.equal(value, original[key]), key


def test_finite_or_none_makes_json_safe_values():
    assert finite_or_none({"a": float("nan"), "b": [1.0, float("inf")], "c": "x"}) == {"a": None, "b": [1.0, None], "c": "x"}
