"""When masks start guiding a trained model, its classifier head is cooled first, the same way in
`train --init --masks` (the Trainer's setup) and in the app's fine-tune round (the candidate).
A model that learnt the shortcut is otherwise flattened by the penalty's first steps
(models/classifier_head.py, docs/entrenched.md)."""

import inspect

import numpy as np
import torch

from app.engine.checkpoint import load_checkpoint, model_from_checkpoint
from app.engine.config import FinetuneConfig, RunPaths, TrainConfig
from app.engine.finetune import finetune_round
from app.run import feedback_round
from app.run.driver import drive_trainer
from app.run.trainer import Trainer
from datasets import MaskStore
from models import classifier_head


def _train(config, paths):
    trainer, outcome = drive_trainer(lambda emit: Trainer(config, FinetuneConfig(), paths, emit=emit))
    assert not hasattr(outcome, "message"), getattr(outcome, "details", outcome)
    return trainer


def _paint(masks_dir, relpaths):
    store = MaskStore(masks_dir)
    mask = np.zeros((32, 32), dtype=np.int8)
    mask[:8, :8] = 1
    for relpath in relpaths:
        store.save(relpath, mask)


def test_train_init_with_masks_starts_from_the_cooled_head_and_a_resume_does_not(image_folder, tmp_path, monkeypatch):
    config = TrainConfig(model="small_cnn", epochs=1, batch_size=8, guidance="rrr", lam=1.0)
    plain = _train(
        config.replace(guidance=None), RunPaths(str(image_folder), checkpoint_out=str(tmp_path / "plain" / "model.pt"))
    )
    head = classifier_head(model_from_checkpoint(load_checkpoint(tmp_path / "plain" / "model.pt")))
    _paint(tmp_path / "masks", plain.data.train.relpaths[:3])

    started = {}
    real_build = Trainer._build_loaders

    def spy(self):  # right after the model is built and before any step
        started["weight"] = classifier_head(self.model).weight.detach().clone()
        real_build(self)

    monkeypatch.setattr(Trainer, "_build_loaders", spy)
    paths = RunPaths(
        str(image_folder),
        masks_dir=str(tmp_path / "masks"),
        init_checkpoint=str(tmp_path / "plain" / "model.pt"),
        checkpoint_out=str(tmp_path / "guided" / "model.pt"),
    )
    _train(config, paths)
    assert torch.allclose(started["weight"], TrainConfig.head_scale * head.weight)

    # A resumed session (its own checkpoint) continues as it was; so does head_scale 1.
    saved = classifier_head(model_from_checkpoint(load_checkpoint(paths.checkpoint_out))).weight.detach().clone()
    _train(config.replace(epochs=3), RunPaths(**{**paths.__dict__, "init_checkpoint": paths.checkpoint_out, "resume": True}))
    assert torch.equal(started["weight"], saved)
    _train(config.replace(head_scale=1.0), RunPaths(**{**paths.__dict__, "checkpoint_out": str(tmp_path / "off" / "model.pt")}))
    assert torch.equal(started["weight"], head.weight)


def test_the_round_and_train_init_share_one_default(monkeypatch):
    """One home: TrainConfig.head_scale is the default of finetune_round and of the CLI, and the
    app's round passes the run's own setting."""
    assert inspect.signature(finetune_round).parameters["head_scale"].default == TrainConfig.head_scale
    from app.cli.main import build_parser

    assert build_parser().parse_args(["train", "--data", "d", "--out", "o"]).head_scale == TrainConfig.head_scale
    source = inspect.getsource(feedback_round.FeedbackRound._finetune)
    assert "head_scale=ctx.config.head_scale" in source


def test_guidance_verdict_says_worse_only_beyond_noise():
    from app.cli.training import guidance_verdict
    from app.engine.accuracy_change import AccuracyChange

    assert guidance_verdict(AccuracyChange(gained=2, lost=40, n=300)).startswith("worse than before")
    assert guidance_verdict(AccuracyChange(gained=60, lost=5, n=300)).startswith("better than before")
    assert guidance_verdict(AccuracyChange(gained=20, lost=24, n=300)).startswith("no clear change")


def test_train_init_with_masks_puts_its_verdict_first(demo_data, tmp_path, capsys):
    """The headless path reports how the shortcut-broken validation changed since the --init model,
    first in its JSON (issue 19: a run that makes the model worse says so)."""
    import json

    from app.cli.main import main

    plain = tmp_path / "plain"
    assert main(["train", "--data", str(demo_data / "train"), "--epochs", "1", "--guidance", "none", "--out", str(plain)]) == 0
    capsys.readouterr()
    argv = ["train", "--data", str(demo_data / "train"), "--masks", str(demo_data / "truth" / "train"), "--init"]
    assert main(argv + [str(plain / "model.pt"), "--epochs", "1", "--out", str(tmp_path / "guided")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert next(iter(result)) == "verdict"
    assert result["verdict"].split(" ")[0] in ("worse", "better", "no")
    change = result["shortcut_broken_change"]
    assert change["n"] > 100 and change["gained"] + change["lost"] <= change["n"]


def test_one_default_lambda_rule():
    """TrainConfig.round_lambda is the one rule: lam goes with the rounds' guidance (the run's own,
    rrr for a run without one, as the settings form's hint says); any other loss gets its default."""
    from app.engine.config import ROUND_GUIDANCE_WHEN_UNGUIDED
    from loss import DEFAULT_LAMBDAS

    assert TrainConfig(guidance=None).round_guidance == ROUND_GUIDANCE_WHEN_UNGUIDED
    assert TrainConfig(guidance="punisher").round_lambda() == DEFAULT_LAMBDAS["punisher"]
    assert TrainConfig(guidance="punisher", lam=0.5).round_lambda() == 0.5
    assert TrainConfig(guidance="punisher", lam=0.5).round_lambda("gradcam") == DEFAULT_LAMBDAS["gradcam"]
    assert TrainConfig(guidance=None, lam=0.5).round_lambda() == 0.5


def test_the_app_train_init_and_finetune_set_up_through_one_function(image_folder, tmp_path, monkeypatch, capsys):
    """The Trainer (the app's runs and rounds, `train`, `train --init --masks`) and `finetune`
    load their data with app.engine.run_setup.load_run_data, build the model with model_for_run,
    and take the rounds' guidance and lambda from the same TrainConfig rule."""
    import json

    import app.cli.finetune_command as finetune_command
    import app.engine.run_setup as run_setup
    import app.run.trainer as trainer_module
    from app.cli.main import main

    calls = []
    for name in ("load_run_data", "model_for_run"):
        real = getattr(run_setup, name)

        def spy(config, checkpoint, *args, _name=name, _real=real, **kwargs):
            calls.append((_name, config, checkpoint is not None))
            return _real(config, checkpoint, *args, **kwargs)

        monkeypatch.setattr(run_setup, name, spy)  # the trainer's build_run_model calls run_setup's own
        for module in (trainer_module, finetune_command):  # and the names they imported
            if hasattr(module, name):
                monkeypatch.setattr(module, name, spy)
    data, masks = str(image_folder), str(tmp_path / "masks")
    assert main(["train", "--data", data, "--epochs", "1", "--guidance", "none", "--out", str(tmp_path / "plain")]) == 0
    _paint(masks, sorted(p.relative_to(image_folder).as_posix() for p in image_folder.rglob("*.png"))[:3])
    guided = ["train", "--data", data, "--masks", masks, "--init", str(tmp_path / "plain" / "model.pt"), "--lam", "2"]
    assert main(guided + ["--epochs", "1", "--out", str(tmp_path / "guided")]) == 0
    finetune = ["finetune", "--checkpoint", str(tmp_path / "guided" / "model.pt"), "--data", data, "--masks", masks]
    capsys.readouterr()
    assert main(finetune + ["--max-steps", "2", "--out", str(tmp_path / "round")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [(name, from_checkpoint) for name, _, from_checkpoint in calls] == [
        ("load_run_data", False),
        ("model_for_run", False),
        ("load_run_data", True),  # train --init --masks
        ("model_for_run", True),
        ("load_run_data", True),  # finetune
        ("model_for_run", True),
    ]
    trained, rounded = calls[2][1], calls[4][1]  # the guided run's config, and finetune's (read from its checkpoint)
    assert (rounded.val_fraction, rounded.seed) == (trained.val_fraction, trained.seed)  # the same split
    assert (report["guidance"], report["lam"]) == (trained.round_guidance, trained.round_lambda()) == ("rrr", 2.0)
    assert "config.round_lambda()" in inspect.getsource(run_setup.build_run_model)  # the trainer's lambda
