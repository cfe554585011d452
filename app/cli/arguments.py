"""The arguments of the workflow (`discover`, `select`, `propagate`), `masks` and `report` commands.

Kept apart from the code that runs them, which imports torch: the parser and every `--help` are
built from here without it, and each command's handler (`LazyHandler`) imports its module
(`app.cli.workflow`, `app.cli.masks`, `app.cli.report`) only when the command runs.
"""

from __future__ import annotations

import argparse
from typing import Any

from app.cli.common import LazyHandler, add_device_argument
from app.cli.locator_options import add_locator_options
from app.explain.options import (
    DEFAULT_CLUSTERS,
    DEFAULT_SIMILAR_LIFT,
    DEFAULT_SIMILAR_SHARE,
    DISCOVERY_DISPLAY_METHOD,
    DISCOVERY_METHOD,
    SALIENCY_METHODS,
    SCOPES,
    SELECTION_STRATEGIES,
)


def add_workflow_commands(commands: Any) -> None:
    """Register `discover`, `select` and `propagate` (`app.cli.workflow`) on the main parser's subparsers."""
    discover = commands.add_parser(
        "discover", help="group the training images by where the model looks, shortcut-like groups first (JSON)"
    )
    discover.add_argument("--checkpoint", required=True)
    discover.add_argument("--data", required=True, help="training image folder root/<class>/<image>")
    discover.add_argument("--clusters", type=int, default=DEFAULT_CLUSTERS, help="groups per class (k-means)")
    discover.add_argument("--pool", type=int, default=None, help="explain a seeded random N images at most (default: all)")
    discover.add_argument(
        "--method", choices=SALIENCY_METHODS, default=DISCOVERY_METHOD, help="saliency method the groups are formed by"
    )
    discover.add_argument(
        "--display-method",
        choices=SALIENCY_METHODS,
        default=DISCOVERY_DISPLAY_METHOD,
        help="saliency method of the maps shown (the groups' mean_map)",
    )
    discover.add_argument("--masks", help="mask folder: green painted there tells how much saliency sits off the object")
    discover.add_argument("--members", action="store_true", help="list every member of each group, not only examples")
    discover.add_argument("--progress", action="store_true", help="report progress on stderr")
    discover.add_argument("--seed", type=int, default=0)
    add_device_argument(discover)
    discover.set_defaults(handler=LazyHandler("app.cli.workflow", "cmd_discover"))

    select = commands.add_parser("select", help="choose the images worth painting; prints their paths as JSON")
    select.add_argument("--checkpoint", required=True)
    select.add_argument("--data", required=True, help="training image folder root/<class>/<image>")
    select.add_argument("--k", type=int, required=True, help="how many images to choose")
    select.add_argument(
        "--strategy",
        choices=SELECTION_STRATEGIES,
        default="unreasonable",
        help="random, entropy (most unsure first), misclassified, unreasonable (explanations "
        "on red of painted images, on regions salient across classes, off the object)",
    )
    select.add_argument("--masks", help="mask folder: its hand-painted images are skipped, its masks inform 'unreasonable'")
    select.add_argument("--include-annotated", action="store_true", help="do not skip images that already have a mask")
    select.add_argument("--reasons", action="store_true", help="print relpath, score and reason per image")
    select.add_argument("--seed", type=int, default=0)
    add_device_argument(select)
    add_locator_options(select)
    select.set_defaults(handler=LazyHandler("app.cli.workflow", "cmd_select"))

    propagate = commands.add_parser("propagate", help="apply painted masks to more images; prints how many (JSON)")
    propagate.add_argument("--checkpoint", required=True, help="the model (its saliency decides 'similar')")
    propagate.add_argument("--data", required=True, help="training image folder the masks belong to")
    propagate.add_argument("--masks", required=True, help="mask folder with the painted masks")
    propagate.add_argument(
        "--scope",
        default="content",
        choices=SCOPES,
        help="content (default): the painted red content found wherever it sits in each image; "
        "positional: all images, the source's class, or images whose saliency sits in the "
        "source's red region (the same pixels)",
    )
    propagate.add_argument(
        "--not-this", metavar="DIR", help="'content': a mask folder whose red marks regions wrongly found ('not this')"
    )
    propagate.add_argument("--exclude", nargs="+", metavar="RELPATH", help="images dropped from the plan")
    propagate.add_argument(
        "--source", nargs="+", metavar="RELPATH", help="painted images to propagate (default: every hand-painted mask in --masks)"
    )
    propagate.add_argument("--out", required=True, help="mask folder to write to (may equal --masks)")
    propagate.add_argument(
        "--similar-share",
        type=float,
        default=DEFAULT_SIMILAR_SHARE,
        help="'similar': share of an image's saliency inside the red region that suffices",
    )
    propagate.add_argument(
        "--similar-lift",
        type=float,
        default=DEFAULT_SIMILAR_LIFT,
        help="'similar': ... or this many times the region's mean share over the images",
    )
    propagate.add_argument("--include-green", action="store_true", help="propagate green as well (off by default)")
    propagate.add_argument("--dry-run", action="store_true", help="only print which images would get a mask")
    add_device_argument(propagate)
    add_locator_options(propagate)
    propagate.set_defaults(handler=LazyHandler("app.cli.workflow", "cmd_propagate"))


def _add_target(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--session", help="a session folder (its training folder and masks/)")
    parser.add_argument("--data", help="the training image folder root/<class>/<image> (without --session)")
    parser.add_argument("--masks", help="the mask folder (without --session)")


def add_masks_commands(commands: Any) -> None:
    """Register `masks import` and `masks export` (`app.cli.masks`) on the main parser's subparsers."""
    masks = commands.add_parser("masks", help="import masks from other annotation tools, or export them")
    actions = masks.add_subparsers(dest="masks_command", metavar="ACTION", required=True)

    importer = actions.add_parser(
        "import",
        help="binary mask folders, COCO JSON (RLE, polygons), Label Studio exports (brush, polygons) -> red/green masks",
    )
    importer.add_argument("source", help="a folder of binary masks, a COCO JSON file or a Label Studio JSON export")
    _add_target(importer)
    importer.add_argument("--format", choices=("auto", "binary", "coco", "label-studio"), default="auto")
    importer.add_argument("--as", dest="colour", choices=("red", "green"), help="binary masks: the colour of their white")
    importer.add_argument("--red", nargs="+", metavar="NAME", help="COCO categories / Label Studio labels painted red")
    importer.add_argument("--green", nargs="+", metavar="NAME", help="COCO categories / Label Studio labels painted green")
    importer.add_argument("--strip-suffix", default="", metavar="TEXT", help="an ending of mask file names to ignore (_mask)")
    existing = importer.add_mutually_exclusive_group()
    existing.add_argument("--overwrite", action="store_true", help="replace hand-painted masks (kept by default)")
    existing.add_argument("--merge", action="store_true", help="paint the import where hand-painted masks are unmarked")
    importer.add_argument("--skip-unmatched", action="store_true", help="import the rest when some names match no image")
    importer.add_argument("--dry-run", action="store_true", help="read and check everything, write nothing")
    importer.set_defaults(handler=LazyHandler("app.cli.masks", "cmd_import"))

    exporter = actions.add_parser("export", help="masks -> COCO JSON (RLE) or binary PNG folders red/ and green/")
    _add_target(exporter)
    exporter.add_argument("--format", choices=("coco", "binary"), required=True)
    exporter.add_argument("--out", required=True, help="the JSON file (coco) or folder (binary) to write")
    exporter.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    exporter.set_defaults(handler=LazyHandler("app.cli.masks", "cmd_export"))


def add_report_commands(commands: Any) -> None:
    """Register `report` (`app.cli.report`) on the main parser's subparsers."""
    report = commands.add_parser("report", help="write a session's self-contained HTML report (rounds, heatmaps, plots)")
    report.add_argument("session", help="the session folder")
    report.add_argument("--out", required=True, help="the HTML file to write")
    report.add_argument("--no-model", action="store_true", help="leave out the confusion matrix (do not run the model)")
    add_device_argument(report)
    report.set_defaults(handler=LazyHandler("app.cli.report", "cmd_report"))
