"""The arguments of `train`, `evaluate`, `finetune` and `demo-data`, without torch.

`main.py --help` builds the whole parser; each command names its handler with `LazyHandler`, so
the command's module (which imports torch at its top) loads only when the command runs.
"""

from __future__ import annotations

from typing import Any

from app.cli.common import (
    COUNTEREXAMPLES_HELP,
    LazyHandler,
    add_amp_argument,
    add_device_argument,
    add_penalty_gradient_argument,
)
from app.cli.locator_options import add_locator_options
from app.engine.config import STOP_RULES, FinetuneConfig, TrainConfig
from datasets.demo_options import SHORTCUTS
from loss.options import GUIDANCE_NAMES
from models.specs import MODEL_NAMES


def add_training_commands(commands: Any) -> None:
    """Register train, evaluate, finetune and demo-data on the main parser's subparsers."""
    add_train_command(commands)
    add_evaluate_command(commands)
    add_finetune_command(commands)
    add_demo_command(commands)


def add_train_command(commands: Any) -> None:
    """Register `train` on the main parser's subparsers."""
    train = commands.add_parser("train", help="train a model, optionally guided by masks")
    train.add_argument("--data", required=True, help="training image folder root/<class>/<image>")
    train.add_argument("--val", help="validation folder (default: a seeded stratified split of --data)")
    train.add_argument("--val-fraction", type=float, default=0.2, help="held-out share when --val is not given")
    train.add_argument("--masks", help="mask folder (<masks>/<relpath>.png, red = discourage, green = encourage)")
    train.add_argument("--model", choices=MODEL_NAMES, help="architecture (default small_cnn, or the --init checkpoint's)")
    train.add_argument("--epochs", type=int, default=10, help="epochs to train (more epochs after --init)")
    train.add_argument("--guidance", choices=GUIDANCE_NAMES + ("none",), default="rrr", help="guidance loss on masked images")
    train.add_argument("--lam", type=float, help="weight of the guidance loss (default: per loss)")
    train.add_argument("--no-counterexamples", action="store_true", help=COUNTEREXAMPLES_HELP)
    train.add_argument(
        "--oversample",
        type=float,
        default=TrainConfig.oversample_annotated,
        metavar="X",
        help="draw each masked image X times as often as an unmasked one (default "
        "%(default)g; 1 = uniform), so a few masks steer every step",
    )
    train.add_argument("--batch-size", type=int, default=64)
    train.add_argument("--lr", type=float, default=1e-3)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--input-size", type=int, help="square input side (default: the model's)")
    train.add_argument("--weights", help="local file with pretrained weights (torchvision state_dict)")
    train.add_argument("--init", help="continue from this checkpoint")
    train.add_argument(
        "--head-scale",
        type=float,
        default=TrainConfig.head_scale,
        metavar="S",
        help="with --init and --masks: scale the classifier head by S first (default %(default)g; 1 = off): the "
        "same predictions, but a model that learnt the shortcut is not flattened by the penalty",
    )
    train.add_argument("--workers", type=int, default=0, help="data loading worker processes (per process under torchrun)")
    train.add_argument(
        "--cache-images",
        type=float,
        default=0.0,
        metavar="GB",
        help="keep decoded, resized images in RAM up to GB gigabytes (per process), so later "
        "epochs skip decoding (150 KB per image at 224 px)",
    )
    train.add_argument("--out", required=True, help="run folder: writes model.pt and metrics.json")
    train.add_argument("--test", help="a shortcut-free test folder, evaluated after every epoch (test_accuracy)")
    add_device_argument(train)
    add_amp_argument(train)
    add_penalty_gradient_argument(train)
    add_locator_options(train)
    train.set_defaults(handler=LazyHandler("app.cli.training", "cmd_train"))


def add_evaluate_command(commands: Any) -> None:
    """Register `evaluate` on the main parser's subparsers."""
    evaluate = commands.add_parser("evaluate", help="accuracy (and saliency on masks) of a checkpoint, as JSON")
    evaluate.add_argument("--checkpoint", required=True)
    evaluate.add_argument("--data", required=True, help="image folder with the checkpoint's classes")
    evaluate.add_argument("--masks", help="mask folder: adds saliency_on_red / saliency_on_green")
    add_device_argument(evaluate)
    evaluate.set_defaults(handler=LazyHandler("app.cli.evaluate_command", "cmd_evaluate"))


def add_finetune_command(commands: Any) -> None:
    """Register `finetune` on the main parser's subparsers."""
    finetune = commands.add_parser("finetune", help="one fine-tune round on the masked images; writes a candidate")
    finetune.add_argument("--checkpoint", required=True)
    finetune.add_argument("--data", required=True, help="training folder the masks belong to")
    finetune.add_argument("--val", help="validation folder (default: the same split as training)")
    finetune.add_argument("--masks", required=True)
    finetune.add_argument(
        "--test", help="a shortcut-free test folder: its accuracy before and after goes into the report (only shown)"
    )
    finetune.add_argument("--out", required=True, help="writes model.pt (candidate) and report.json")
    finetune.add_argument(
        "--guidance",
        choices=GUIDANCE_NAMES + ("checkpoint",),
        default="checkpoint",
        help="guidance loss of the round (default: the checkpoint's, rrr when it had none)",
    )
    finetune.add_argument("--lam", type=float)
    finetune.add_argument("--no-counterexamples", action="store_true", help=COUNTEREXAMPLES_HELP)
    finetune.add_argument("--lr", type=float)
    finetune.add_argument("--max-steps", type=int)
    finetune.add_argument(
        "--head-scale",
        type=float,
        metavar="S",
        help="scale the candidate's classifier head by S first (default: the checkpoint's run, 0.1)",
    )
    finetune.add_argument("--patience", type=int, help="plateau rule: checks without a new best before stopping (default 8)")
    finetune.add_argument("--val-loss-rise", type=float, help="stop when val loss >= this x before (default 1.2)")
    finetune.add_argument("--guidance-drop", type=float, help="stop when guidance <= L0 - this x |L0| (default 0.5)")
    finetune.add_argument(
        "--stop-rule",
        choices=STOP_RULES,
        default=FinetuneConfig.stop_rule,
        help="plateau (default): train while shortcut-broken validation accuracy keeps rising, keep the best "
        "state; saliency: stop when saliency on red halved or the shortcut-broken validation got worse; "
        "thesis: guidance halved or val loss rose",
    )
    add_device_argument(finetune)
    add_amp_argument(finetune)
    add_locator_options(finetune)
    finetune.set_defaults(handler=LazyHandler("app.cli.finetune_command", "cmd_finetune"))


def add_demo_command(commands: Any) -> None:
    """Register `demo-data` on the main parser's subparsers."""
    demo = commands.add_parser("demo-data", help="write the shortcut demo data set (scikit-learn digits + decoy swatch)")
    demo.add_argument("--out", required=True)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument(
        "--shortcut",
        choices=SHORTCUTS,
        default="corner",
        help="corner: a shaded swatch in a random corner (Decoy MNIST); moving: the swatch "
        "anywhere in the border; shape: a glyph per digit anywhere in the border",
    )
    demo.add_argument("--vary-size", action="store_true", help="moving: a random swatch side of 4-8 pixels per image")
    demo.set_defaults(handler=LazyHandler("app.cli.demo_command", "cmd_demo_data"))
