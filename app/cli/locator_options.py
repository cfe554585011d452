"""The `--locator-*` options: the content locator's user settings on the command line.

One option per `app.explain.locator_config.LOCATOR_SETTINGS` entry, stored under the
`TrainConfig` field's name (`locator_rim`, ...) and None when not given, so `train` passes them
to its TrainConfig, `finetune` lays them over the checkpoint's, and `propagate` and `select` turn
them into a LocatorConfig (`locator_config_from(args)`).
"""

from __future__ import annotations

import argparse
from typing import Any, Dict

from app.explain.locator_config import LOCATOR_SETTINGS, LocatorConfig, check_locator_settings, locator_config_from


def add_locator_options(parser: argparse.ArgumentParser) -> None:
    """Add the `--locator-*` options to a command's parser."""
    for setting in LOCATOR_SETTINGS:
        parser.add_argument(
            setting.option,
            dest=setting.config_field,
            type=float,
            default=None,
            metavar="X",
            help=f"content locator: {setting.hint} (default {setting.default:g})",
        )


def locator_options(args: argparse.Namespace) -> Dict[str, Any]:
    """The `--locator-*` options given, as TrainConfig fields (UserError for one out of range)."""
    check_locator_settings(args)
    return {
        s.config_field: getattr(args, s.config_field) for s in LOCATOR_SETTINGS if getattr(args, s.config_field, None) is not None
    }


def locator_config_of(args: argparse.Namespace) -> LocatorConfig:
    """The LocatorConfig the `--locator-*` options ask for (UserError for one out of range)."""
    check_locator_settings(args)
    return locator_config_from(args)
