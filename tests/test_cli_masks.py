"""`main.py masks import|export` end to end on tiny data: JSON out, hand-painted masks kept,
one error line for a malformed file, nothing written."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from app.cli.common import EXIT_OK, EXIT_USER_ERROR
from app.cli.main import main
from app.run.session import Session
from datasets.masks import GREEN, RED

SIDE = 12


@pytest.fixture
def data_dir(tmp_path):
    root = tmp_path / "data"
    rng = np.random.default_rng(0)
    for label in ("cat", "dog"):
        (root / label).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)).save(root / label / f"{label}_{i}.png")
    return root


def binary_folder(tmp_path, names):
    folder = tmp_path / "objects"
    folder.mkdir()
    region = np.zeros((SIDE, SIDE), dtype=np.uint8)
    region[2:6, 3:9] = 255
    for name in names:
        Image.fromarray(region).save(folder / name)
    return folder, region > 0


def test_import_into_a_session_keeps_hand_painted_masks_and_exports(tmp_path, data_dir, capsys):
    session = Session.create(tmp_path / "session", data_dir)
    painted = np.zeros((SIDE, SIDE), dtype=np.int8)
    painted[0, 0] = RED
    session.masks.save("cat/cat_0.png", painted)
    folder, region = binary_folder(tmp_path, ["cat_0.png", "cat_1.png", "dog_2.png"])

    assert main(["masks", "import", str(folder), "--session", str(session.folder), "--as", "green", "--dry-run"]) == EXIT_OK
    dry = json.loads(capsys.readouterr().out)
    assert dry["would_write"] == 2 and dry["would_keep_existing"] == ["cat/cat_0.png"]
    assert session.masks.annotated() == ["cat/cat_0.png"]

    assert main(["masks", "import", str(folder), "--session", str(session.folder), "--as", "green"]) == EXIT_OK
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["written"] == 2 and result["kept_existing"] == ["cat/cat_0.png"]
    assert "kept 1 hand-painted masks" in captured.err
    np.testing.assert_array_equal(session.masks.load_array("cat/cat_0.png"), painted)
    np.testing.assert_array_equal(session.masks.load_array("dog/dog_2.png"), np.where(region, GREEN, 0))

    out = tmp_path / "masks.json"
    assert main(["masks", "export", "--session", str(session.folder), "--format", "coco", "--out", str(out)]) == EXIT_OK
    assert json.loads(capsys.readouterr().out)["images"] == 3
    assert main(["masks", "export", "--session", str(session.folder), "--format", "coco", "--out", str(out)]) == EXIT_USER_ERROR
    assert "exists" in capsys.readouterr().err
    assert (
        main(["masks", "export", "--session", str(session.folder), "--format", "binary", "--out", str(tmp_path / "b")]) == EXIT_OK
    )
    assert json.loads(capsys.readouterr().out)["files"] == {"red": 1, "green": 2}
    assert (tmp_path / "b" / "green" / "dog" / "dog_2.png").is_file()


def test_a_malformed_file_is_one_error_line_and_writes_nothing(tmp_path, data_dir, capsys):
    masks = tmp_path / "masks"
    coco = tmp_path / "c.json"
    coco.write_text(
        json.dumps(
            {
                "images": [{"id": 1, "file_name": "cat_0.png", "height": SIDE, "width": SIDE}],
                "annotations": [
                    {"id": 1, "image_id": 1, "category_id": 1, "segmentation": {"size": [SIDE, SIDE], "counts": [5, 500]}}
                ],
                "categories": [{"id": 1, "name": "ruler"}],
            }
        )
    )
    args = ["masks", "import", str(coco), "--data", str(data_dir), "--masks", str(masks), "--red", "ruler"]
    assert main(args) == EXIT_USER_ERROR
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: c.json: annotation #0 (cat_0.png): the RLE overruns its image")
    assert not masks.exists() or not any(masks.rglob("*.png"))

    assert main(["masks", "import", str(coco), "--data", str(data_dir), "--masks", str(masks)]) == EXIT_USER_ERROR
    assert "Say which categories are red and which green" in capsys.readouterr().err
    folder, _ = binary_folder(tmp_path, ["cat_0.png"])
    assert main(["masks", "import", str(folder), "--data", str(data_dir), "--masks", str(masks)]) == EXIT_USER_ERROR
    assert "--as green" in capsys.readouterr().err
