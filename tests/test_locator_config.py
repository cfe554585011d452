"""Tests for app/explain/locator_config.py: the content locator's user settings reach it from
TrainConfig, from the command line (train, finetune, propagate, select) and from the settings form."""

from __future__ import annotations

import dataclasses
import math
from types import SimpleNamespace

import pytest

from app.cli.main import build_parser, main
from app.engine.config import TrainConfig
from app.errors import UserError
from app.explain.locator_config import LOCATOR_SETTINGS, LocatorConfig, locator_config_from

CHANGED = {"locator_rim": 2.0, "locator_weak_find_mass": 0.0, "locator_recall_beta": 1.0}
CHANGED_FLAGS = ["--locator-rim", "2", "--locator-weak-find", "0", "--locator-recall-beta", "1"]


def _assert_changed(config: LocatorConfig) -> None:
    assert (config.rim, config.weak_find_mass, config.recall_beta) == (2.0, 0.0, 1.0)
    assert config.work_side == LocatorConfig().work_side  # the rest untouched


def test_every_user_setting_is_a_locator_field_and_a_train_config_field_with_its_default():
    train_fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    for setting in LOCATOR_SETTINGS:
        assert setting.field in {f.name for f in dataclasses.fields(LocatorConfig)}
        assert train_fields[setting.config_field].default == setting.default
        assert setting.problem(setting.default) == ""
    assert set(CHANGED) == {s.config_field for s in LOCATOR_SETTINGS}


def test_train_config_defaults_give_the_locator_defaults():
    assert TrainConfig().locator_config() == LocatorConfig()


def test_train_config_fields_reach_the_locator_config():
    _assert_changed(TrainConfig(**CHANGED).locator_config())


def test_locator_settings_survive_the_stored_dict_and_old_dicts_get_the_defaults():
    stored = dataclasses.asdict(TrainConfig(**CHANGED))
    _assert_changed(TrainConfig.from_dict(stored).locator_config())
    old = {k: v for k, v in stored.items() if not k.startswith("locator_")}  # a session from before
    assert TrainConfig.from_dict(old).locator_config() == LocatorConfig()


@pytest.mark.parametrize(
    "field, value",
    [("locator_rim", -1.0), ("locator_rim", 100.0), ("locator_weak_find_mass", 1.5), ("locator_recall_beta", 0.0),
     ("locator_recall_beta", math.nan), ("locator_rim", "2")],
)  # fmt: skip
def test_out_of_range_settings_are_refused_by_name(field, value):
    with pytest.raises(UserError, match=field):
        TrainConfig(**{field: value})


def test_locator_config_from_keeps_the_base_for_settings_not_given():
    base = LocatorConfig(work_side=64)
    assert locator_config_from(SimpleNamespace(locator_rim=None), base) is base
    assert locator_config_from(SimpleNamespace(locator_rim=3), base) == dataclasses.replace(base, rim=3.0)


@pytest.mark.parametrize("command", ["train", "finetune", "propagate", "select"])
def test_every_locator_command_parses_the_flags_into_the_train_config_names(command):
    required = {
        "train": ["--data", "d", "--out", "o"],
        "finetune": ["--checkpoint", "c", "--data", "d", "--masks", "m", "--out", "o"],
        "propagate": ["--checkpoint", "c", "--data", "d", "--masks", "m", "--out", "o"],
        "select": ["--checkpoint", "c", "--data", "d", "--k", "2"],
    }[command]
    args = build_parser().parse_args([command, *required, *CHANGED_FLAGS])
    assert {name: getattr(args, name) for name in CHANGED} == CHANGED
    unset = build_parser().parse_args([command, *required])
    assert locator_config_from(unset) == LocatorConfig()


def test_train_flags_reach_the_trainers_config(tmp_path, monkeypatch):
    import app.cli.training as training
    from app.run import messages as msg

    made = []
    monkeypatch.setattr(training, "Trainer", lambda config, *args, **options: made.append(config))

    def drive(make_trainer, **options):
        make_trainer(lambda event: None)
        return None, msg.TrainingFailed("stopped by the test", user_error=True)

    monkeypatch.setattr(training, "drive_trainer", drive)
    code = main(["train", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "run"), *CHANGED_FLAGS])
    assert code == 2 and len(made) == 1
    assert {name: getattr(made[0], name) for name in CHANGED} == CHANGED
    _assert_changed(made[0].locator_config())


def test_propagate_flags_reach_the_plan(tmp_path, monkeypatch, capsys):
    import app.cli.workflow as workflow
    from datasets import MaskStore

    masks = tmp_path / "masks"
    masks.mkdir()
    data = SimpleNamespace(masks=MaskStore(masks), relpaths=["a/1.png"])
    monkeypatch.setattr(workflow, "load_model_and_data", lambda *args: (None, data, "cpu"))
    planned = []

    def plan(*args, **options):
        planned.append(options)
        raise UserError("stopped by the test")

    monkeypatch.setattr(workflow, "plan_propagation", plan)
    argv = ["propagate", "--checkpoint", "c", "--data", str(tmp_path / "data"), "--masks", str(masks)]
    argv += ["--out", str(tmp_path / "out"), "--source", "a/1.png"]
    assert main(argv + CHANGED_FLAGS) == 2
    _assert_changed(planned[0]["locator_config"])
    capsys.readouterr()
    assert main(argv + ["--locator-weak-find", "2"]) == 2 and len(planned) == 1  # refused before the plan
    assert "locator_weak_find_mass (--locator-weak-find) must be at least 0 and at most 1" in capsys.readouterr().err


@pytest.mark.gui
def test_the_settings_form_shows_and_reads_the_locator_settings(tk_root):
    from ui.main_window.settings_panel import FormError, SettingsPanel

    panel = SettingsPanel(tk_root, base_config=TrainConfig())
    for setting in LOCATOR_SETTINGS:
        assert float(panel.vars[setting.config_field].get()) == setting.default
    panel.vars["locator_rim"].set("2")
    panel.vars["locator_weak_find_mass"].set("0")
    panel.vars["locator_recall_beta"].set("1")
    _assert_changed(panel.read().config.locator_config())
    panel.vars["locator_recall_beta"].set("0")
    with pytest.raises(FormError):
        panel.read()
    assert "locator_recall_beta" in panel.errors_shown()
    panel.load(None, None, TrainConfig(locator_rim=3.0))
    assert panel.vars["locator_rim"].get() == "3"
