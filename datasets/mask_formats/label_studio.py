"""Label Studio's JSON export (the "JSON" format: a list of tasks) of brush and polygon labels.

Each task names its image in `data` (`data.image`, or the first text value) and holds
`annotations`, each with a `result` list. Read here:

- `brushlabels` results: `value.rle` (the brush RLE, `label_studio_rle`) over
  `original_height` x `original_width`, labels in `value.brushlabels`;
- `polygonlabels` results: `value.points` as [x, y] in percent of the image's width and height,
  labels in `value.polygonlabels`, rasterised with COCO's polygon rasteriser.

Cancelled annotations are left out; several annotations of one task are united (red wins where
red and green meet). Other result types (rectangles, choices) and labels mapped to neither
colour are counted in the plan's `ignored_labels`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Collection, Dict, Optional

from ..errors import DatasetError
from .coco import check_label_choice, load_json
from .coco_rle import polygons_to_mask
from .image_matching import name_from_reference
from .import_plan import DataImages, ImportPlan, PlanBuilder, Progress
from .label_studio_rle import decode_brush_rle

_KINDS = {"brushlabels": "brushlabels", "polygonlabels": "polygonlabels"}


def _task_image(task: dict, where: str) -> str:
    data = task.get("data")
    if isinstance(data, dict):
        if isinstance(data.get("image"), str):
            return name_from_reference(data["image"])
        for value in data.values():
            if isinstance(value, str) and value.strip():
                return name_from_reference(value)
    if isinstance(task.get("file_upload"), str):
        return task["file_upload"]
    raise DatasetError(f"{where} names no image (no 'data.image').")


def _size(result: dict, where: str) -> tuple[int, int]:
    height, width = result.get("original_height"), result.get("original_width")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (height, width)):
        raise DatasetError(f"{where}: 'original_height' and 'original_width' must be positive whole numbers.")
    return height, width


def _results(task: dict, where: str) -> list:
    annotations = task.get("annotations", task.get("completions", []))
    if not isinstance(annotations, list):
        raise DatasetError(f"{where}: 'annotations' must be a list.")
    results = []
    for number, annotation in enumerate(annotations):
        if not isinstance(annotation, dict) or not isinstance(annotation.get("result", []), list):
            raise DatasetError(f"{where}, annotation #{number}: 'result' must be a list.")
        if annotation.get("was_cancelled"):
            continue
        results.extend((number, result) for result in annotation.get("result", []))
    return results


def _labels_of(result: Any) -> list:
    if not isinstance(result, dict) or result.get("type") not in _KINDS or not isinstance(result.get("value"), dict):
        return []
    labels = result["value"].get(_KINDS[result["type"]])
    return [str(v) for v in labels] if isinstance(labels, list) else []


def read_label_studio(
    path: str | os.PathLike,
    images: DataImages,
    red: Collection[str],
    green: Collection[str],
    *,
    skip_unmatched: bool = False,
    progress: Optional[Progress] = None,
) -> ImportPlan:
    """The brush and polygon labels of a Label Studio JSON export whose label is in `red` or `green`."""
    path = Path(path)
    tasks = load_json(path, "Label Studio export")
    name = path.name
    if isinstance(tasks, dict):
        tasks = [tasks]
    if not isinstance(tasks, list) or not all(isinstance(t, dict) for t in tasks):
        raise DatasetError(f"{path} is not a Label Studio JSON export (a list of tasks).")
    counts: Dict[str, int] = {}
    for number, task in enumerate(tasks):
        for _, result in _results(task, f"{name}: task #{number}"):
            for label in _labels_of(result):
                counts[label] = counts.get(label, 0) + 1
    check_label_choice(red, green, counts, "labels", name)
    builder = PlanBuilder(images, "label-studio", path, skip_unmatched)
    for done, task in enumerate(tasks, 1):
        task_where = f"{name}: task #{done - 1}"
        image = _task_image(task, task_where)
        size = None
        paint: Dict[str, Any] = {"red": None, "green": None}
        for annotation_number, result in _results(task, task_where):
            kind = result.get("type") if isinstance(result, dict) else None
            if kind not in _KINDS:
                builder.ignore(f"({kind} results)")
                continue
            where = f"{task_where} ({image}), annotation #{annotation_number}, {kind}"
            labels = _labels_of(result)
            colour = "red" if any(v in red for v in labels) else "green" if any(v in green for v in labels) else None
            if colour is None:
                for label in labels or ["(no label)"]:
                    builder.ignore(label)
                continue
            result_size = _size(result, where)
            if size is not None and result_size != size:
                raise DatasetError(f"{where}: its size {result_size} differs from the task's other results {size}.")
            size = result_size
            value = result["value"]
            if kind == "brushlabels":
                if value.get("format", "rle") != "rle" or "rle" not in value:
                    raise DatasetError(f"{where}: only brush results in the 'rle' format can be read.")
                region = decode_brush_rle(value["rle"], size, where)
            else:
                points = value.get("points")
                if not isinstance(points, list) or not all(isinstance(p, list) and len(p) == 2 for p in points):
                    raise DatasetError(f"{where}: 'points' must be a list of [x, y] pairs (percent of the image).")
                try:
                    flat = [float(c) * (size[1] if i % 2 == 0 else size[0]) / 100.0 for p in points for i, c in enumerate(p)]
                except (TypeError, ValueError):
                    raise DatasetError(f"{where}: polygon points must be numbers.") from None
                region = polygons_to_mask([flat], size, where)
            paint[colour] = region if paint[colour] is None else paint[colour] | region
        if size is not None:
            builder.add(image, size, paint["red"], paint["green"], where=f"{name}: {image}")
        if progress is not None:
            progress(done, len(tasks))
    return builder.finish()
