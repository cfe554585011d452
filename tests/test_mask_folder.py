"""app/run/mask_folder.py: one owner of a session's mask folder, through which the brush window's
autosaver and the trainer both write (issue 25, item 5)."""

import pickle
import threading

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


def _by_hand(meta):
    return meta.get("source") != "propagated"


def test_conditional_writes_keep_what_keep_says(tmp_path):
    folder = MaskFolder(tmp_path / "masks")
    assert folder.save_unless("cat/a.png", _mask(1), {"source": "propagated"}, keep=_by_hand)  # no mask yet
    assert folder.save_unless("cat/a.png", _mask(-1), {"source": "propagated"}, keep=_by_hand)  # replaced
    folder.save("cat/a.png", _mask(1))  # painted by hand
    assert not folder.save_unless("cat/a.png", _mask(-1), {"source": "propagated"}, keep=_by_hand)
    assert not folder.delete_unless("cat/a.png", keep=_by_hand)
    assert folder.load_array("cat/a.png")[0, 0] == 1 and folder.meta("cat/a.png") == {}
    assert not folder.delete_unless("cat/b.png", keep=_by_hand)  # nothing to delete
    folder.save("cat/b.png", _mask(1), {"source": "propagated"})
    assert folder.delete_unless("cat/b.png", keep=_by_hand) and not folder.has("cat/b.png")


def test_a_conditional_write_checks_and_writes_under_the_folders_lock(tmp_path):
    """The autosaver's save takes the same lock, so it cannot land between the check and the
    write: while either runs, no other thread can take the lock."""
    folder = MaskFolder(tmp_path / "masks")
    inner = folder._store
    free_during = []

    def lock_free_elsewhere():
        answer = []

        def try_lock():  # as the autosaver's thread would, without waiting
            answer.append(folder._lock.acquire(blocking=False))
            if answer[0]:
                folder._lock.release()

        other = threading.Thread(target=try_lock)
        other.start()
        other.join()
        return answer[0]

    def keep(meta):
        free_during.append(("check", lock_free_elsewhere()))
        return _by_hand(meta)

    save = inner.save

    def recording_save(*args, **kwargs):
        free_during.append(("write", lock_free_elsewhere()))
        return save(*args, **kwargs)

    inner.save = recording_save
    inner.save("cat/a.png", _mask(1), {"source": "propagated"})
    free_during.clear()
    assert folder.save_unless("cat/a.png", _mask(-1), {"source": "propagated"}, keep=keep)
    assert free_during == [("check", False), ("write", False)]
