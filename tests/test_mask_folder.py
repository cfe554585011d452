"""app/run/mask_folder.py: one owner of a session's mask folder, through which the brush window's
autosaver and the trainer both write (issue 25, item 5)."""

import pickle

import numpy as np
import pytest

from app.engine.config import FinetuneConfig, TrainConfig
from app.run.mask_folder import MaskFolder
from app.run.session import Session
from app.run.trainer import Trainer
from datasets import MaskStore


def _mask(value, size=8):
    mask = np.zeros((size, size), dtype=np.int8)
    mask[:2, :2] = value
    return mask


def test_a_save_is_seen_by_the_next_load_at_once(tmp_path):
    folder = MaskFolder(tmp_path / "masks")
    folder.save("cat/a.png", _mask(1))
    assert folder.load("cat/a.png", (8, 8))[0, 0] == 1  # cached now
    folder.save("cat/a.png", _mask(-1))  # the one cache forgets it, whatever the file's mtime says
    assert folder.load("cat/a.png", (8, 8))[0, 0] == -1
    assert folder.annotated() == ["cat/a.png"] and folder.has("cat/a.png")
    folder.delete("cat/a.png")
    assert folder.load("cat/a.png", (8, 8)) is None and folder.annotated() == []


def test_it_adopts_only_a_store_of_its_own_folder_and_keeps_the_image_names(tmp_path):
    folder = MaskFolder(tmp_path / "masks")
    with pytest.raises(ValueError):
        folder.adopt(MaskStore(tmp_path / "other"))
    folder.adopt(MaskStore(tmp_path / "masks", ["cat/a.jpg"]))
    folder.save("cat/a.jpg", _mask(1))
    assert folder.annotated() == ["cat/a.jpg"]  # the adopted store knows the image's suffix


def test_a_copy_for_a_loader_worker_reads_the_same_masks(tmp_path):
    folder = MaskFolder(tmp_path / "masks")
    folder.save("cat/a.png", _mask(1))
    copy = pickle.loads(pickle.dumps(folder))
    assert copy.load("cat/a.png", (8, 8))[0, 0] == 1
    copy.save("cat/b.png", _mask(1))  # it has a lock of its own
    assert folder.annotated() == ["cat/a.png", "cat/b.png"]


def test_a_sessions_trainer_writes_through_the_sessions_own_mask_folder(image_folder, tmp_path):
    """The brush window gets `session.masks`; the trainer's training split (which propagation
    writes into) is that very object, not a second store on the same folder."""
    config = TrainConfig(model="small_cnn", epochs=1, batch_size=8, feedback_every=0)
    session = Session.create(tmp_path / "session", image_folder, None, config, FinetuneConfig())
    assert isinstance(session.masks, MaskFolder)
    trainer = Trainer(config, FinetuneConfig(), session.run_paths(), emit=lambda event: None, session=session)
    trainer.run()
    assert trainer.data.train.masks is session.masks and trainer.data.val.masks is session.masks
    relpath = trainer.data.train.relpaths[0]
    session.masks.save(relpath, _mask(1, size=32))  # as the autosaver does
    assert trainer.data.train.annotated_indices() == [0]
