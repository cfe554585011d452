"""Masks on disk: where they live, how they are read and written, and a cached store.

A mask marks, per pixel of one image, where the model must not look (`RED = +1`, "discourage")
and where it should (`GREEN = -1`, "encourage"); everything else is unmarked (0). On disk it is
a PNG that any image editor can open: red (255, 0, 0) and green (0, 255, 0) opaque, unmarked
transparent. Reading is forgiving, because an editor may save RGB, RGBA or palette PNGs and
blend colours at a brush edge: a pixel is red when R >= 128, G < 128, B < 128 (and alpha >= 128
when there is alpha), green likewise with G and R swapped; any other pixel is unmarked.

The mask of the image `relpath` (e.g. "3/img_0012.jpg") is `<masks dir>/3/img_0012.png`.
A mask may be stored at any size (the original image's, or the brush window's); reading it at
the model's input size resizes it with nearest neighbour, the same stretch the image gets, so
the two stay aligned. Writes are atomic (temp file + `os.replace`), because the UI writes masks
while the trainer reads them in another thread.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
from collections import OrderedDict
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING, Callable, Iterable, Mapping

import numpy as np
from PIL import Image, PngImagePlugin, UnidentifiedImageError

from .atomic_files import atomic_open
from .errors import DatasetError

if TYPE_CHECKING:  # torch itself is imported where a tensor is made: the desktop app's window
    import torch  # (brush strokes, the demo, a session's masks) starts without it

log = logging.getLogger(__name__)

RED = 1  # discourage: the model must not rely on these pixels
GREEN = -1  # encourage: the model should rely on these pixels
UNMARKED = 0

MASK_SUFFIX = ".png"

# RGBA written for each mask value.
_RED_RGBA = (255, 0, 0, 255)
_GREEN_RGBA = (0, 255, 0, 255)
_UNMARKED_RGBA = (0, 0, 0, 0)
_RGBA_OF_VALUE = np.array([_GREEN_RGBA, _UNMARKED_RGBA, _RED_RGBA], dtype=np.uint8)  # indexed by value + 1
# A channel counts as "on" from this value up (near-exact colour match, see module docstring).
_ON = 128
# Masks at the model's input size kept in memory by one MaskStore (int8, so 224x224 is 49 KiB).
_CACHE_ENTRIES = 4096

Keep = Callable[[dict], bool]  # the meta of a mask on disk -> whether that mask must stay


def mask_path(masks_dir: str | os.PathLike, relpath: str) -> Path:
    """Where the mask of image `relpath` lives: `masks_dir/relpath` with the suffix `.png`.

    Raises DatasetError for a relpath that is empty, absolute, contains `..`, or would end up
    outside `masks_dir` through a symbolic link.
    """
    root = Path(masks_dir)
    candidate = root / relative_mask_path(relpath)
    try:
        inside = candidate.resolve().is_relative_to(root.resolve())
    except (OSError, ValueError) as error:  # a NUL byte, a symbolic link loop
        raise DatasetError(f"Cannot place a mask for {relpath!r}: {error}.") from None
    if not inside:
        raise DatasetError(
            f"The mask for {relpath!r} would be written outside the mask folder "
            f"{root} (a symbolic link inside it points elsewhere). Remove the "
            "link or choose another mask folder."
        )
    return candidate


def relative_mask_path(relpath: str) -> PurePosixPath:
    """`relpath` with the suffix `.png`, checked to stay below the mask folder by name (not
    absolute, no `..`); DatasetError otherwise. Links are `mask_path`'s check."""
    if not isinstance(relpath, str) or not relpath.strip():
        raise DatasetError(f"Cannot place a mask for the image path {relpath!r}: it is empty.")
    pure = PurePosixPath(relpath)
    windows = PureWindowsPath(relpath)
    if pure.is_absolute() or windows.is_absolute() or windows.drive:
        raise DatasetError(f"Cannot place a mask for {relpath!r}: image paths must be relative to the data folder, not absolute.")
    if ".." in pure.parts or ".." in windows.parts:
        raise DatasetError(f"Cannot place a mask for {relpath!r}: '..' would leave the mask folder.")
    try:
        return pure.with_suffix(MASK_SUFFIX)
    except ValueError:
        raise DatasetError(f"Cannot place a mask for {relpath!r}: it names no file.") from None


def mask_to_image(mask: np.ndarray) -> Image.Image:
    """An HxW mask in {-1, 0, +1} as the RGBA picture written to disk."""
    values = _check_mask_values(mask)
    rgba = _RGBA_OF_VALUE[values.astype(np.intp) + 1]  # one table look-up instead of three masked writes
    return Image.fromarray(rgba, mode="RGBA")


def image_to_mask(image: Image.Image) -> np.ndarray:
    """np.int8 HxW in {-1, 0, +1} from a mask picture in any mode (see the colour rule above)."""
    rgba = np.asarray(image.convert("RGBA"))
    red_on, green_on, blue_on = (rgba[..., c] >= _ON for c in range(3))
    opaque = rgba[..., 3] >= _ON
    mask = np.zeros(rgba.shape[:2], dtype=np.int8)
    mask[red_on & ~green_on & ~blue_on & opaque] = RED
    mask[green_on & ~red_on & ~blue_on & opaque] = GREEN
    return mask


def _check_mask_values(mask) -> np.ndarray:
    """The mask as np.int8 HxW, or DatasetError if it is not 2-D with values in {-1, 0, +1}."""
    values = np.asarray(mask)
    if values.ndim != 2 or values.shape[0] == 0 or values.shape[1] == 0:
        raise DatasetError(f"A mask must be a non-empty H x W array; got shape {values.shape}.")
    if values.dtype.kind in "biu":  # bool or integer: the range decides, without sorting (bulk imports)
        valid = bool(values.min() >= GREEN and values.max() <= RED)
    else:
        valid = bool(np.isin(values, (GREEN, UNMARKED, RED)).all())
    unexpected = np.setdiff1d(np.unique(values), [GREEN, UNMARKED, RED]) if not valid else np.empty(0)
    if unexpected.size:
        raise DatasetError(f"A mask may only hold -1 (green), 0 (unmarked) and +1 (red); got also {unexpected[:5].tolist()}.")
    return values.astype(np.int8)


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A mask in {-1, 0, +1} (any integer or bool dtype, H x W) as a new np.int8 array of
    size = (H, W), nearest neighbour (no blended values). The one mask resize of the code base:
    masks are stored at their image's display size and read at whatever size is asked."""
    height, width = size
    if mask.shape == (height, width):
        return np.array(mask, dtype=np.int8)
    codes = Image.fromarray((np.asarray(mask, dtype=np.int16) + 1).astype(np.uint8), mode="L")
    resized = codes.resize((width, height), Image.Resampling.NEAREST)
    return np.asarray(resized).astype(np.int8) - 1


def resize_bool(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A bool H x W mask (found content, a region) as a new bool array of size = (H, W), with the
    same nearest-neighbour sampling as `resize_mask` (pixel centres, as PIL does)."""
    return resize_mask(np.asarray(mask, dtype=bool).astype(np.int8), size) > 0


def read_mask_array(path: str | os.PathLike, size: tuple[int, int] | None = None) -> np.ndarray:
    """The mask at `path` as np.int8 HxW in {-1, 0, +1}, at its stored size or at size=(H, W).

    Raises DatasetError naming the file when it is missing or not a readable image.
    """
    path = Path(path)
    try:
        if not stat.S_ISREG(path.stat().st_mode):  # a FIFO would block the read, /dev/zero never end
            raise DatasetError(f"The mask {path} is not a regular file (a pipe, device or socket). Delete it.")
        with open(path, "rb") as file:
            image = Image.open(file)
            if size is not None:
                # Sampled down before the per-pixel arrays: a 12000 x 12000 mask cost 3.7 GB.
                # Nearest neighbour picks the same pixels before and after classifying them.
                height, width = _check_size(size)
                image = image.resize((width, height), Image.Resampling.NEAREST)
            else:
                image.load()
    except FileNotFoundError:
        raise DatasetError(f"The mask {path} does not exist.") from None
    except DatasetError:
        raise
    except UnidentifiedImageError:
        raise DatasetError(f"The mask {path} is not an image. Delete it, or paint the image again.") from None
    except Exception as error:  # noqa: BLE001 -- any decoder failure means a broken file
        raise DatasetError(f"The mask {path} cannot be read ({error}). Delete it, or paint the image again.") from None
    return image_to_mask(image)


def read_mask(path: str | os.PathLike, size: tuple[int, int] | None = None) -> torch.Tensor:
    """The mask at `path` as a float32 HxW tensor in {-1, 0, +1}; size=(H, W) resizes (nearest)."""
    import torch

    return torch.from_numpy(read_mask_array(path, size).astype(np.float32))


def _check_size(size) -> tuple[int, int]:
    height, width = (int(v) for v in size)
    if height <= 0 or width <= 0:
        raise DatasetError(f"A mask size must be positive (H, W); got {tuple(size)}.")
    return height, width


def _png_text(meta: Mapping[str, object] | None) -> PngImagePlugin.PngInfo:
    """PNG text chunks for `meta`; values are stored (and read back) as strings."""
    info = PngImagePlugin.PngInfo()
    for key, value in (meta or {}).items():
        if not isinstance(key, str) or not 1 <= len(key) <= 79 or not key.isprintable():
            raise DatasetError(f"Mask metadata keys must be printable text of 1 to 79 characters; got {key!r}.")
        try:
            key.encode("latin-1")
        except UnicodeEncodeError:
            raise DatasetError(f"Mask metadata key {key!r} must be plain (Latin-1) text.") from None
        info.add_itxt(key, str(value))
    return info


def write_mask(path: str | os.PathLike, mask: np.ndarray, meta: Mapping[str, object] | None = None) -> None:
    """Write an HxW mask in {-1, 0, +1} atomically as an RGBA PNG at `path`.

    Red/green are opaque, unmarked transparent; `meta` (e.g. {"source": "propagated"}) goes into
    PNG text chunks, values as strings. Parent folders are created. A reader in another thread
    sees either the old file or the new one, never a half-written one.
    """
    path = Path(path)
    image = mask_to_image(mask)
    info = _png_text(meta)
    with atomic_open(path, "wb", clean_stale=False) as file:  # fsynced file and folder, ordinary mode
        image.save(file, format="PNG", pnginfo=info)


def read_mask_meta(path: str | os.PathLike) -> dict[str, str]:
    """The PNG text chunks of the mask at `path` as {key: value} ({} when it has none)."""
    path = Path(path)
    try:
        with open(path, "rb") as file:
            image = Image.open(file)
            text = getattr(image, "text", {})  # reads chunks after the pixels as well
            return {str(key): str(value) for key, value in text.items()}
    except FileNotFoundError:
        raise DatasetError(f"The mask {path} does not exist.") from None
    except Exception as error:  # noqa: BLE001 -- any decoder failure means a broken file
        raise DatasetError(f"The mask {path} cannot be read ({error}).") from None


def _mask_key(relpath: str) -> str:
    """The mask's own relative path for image `relpath` (suffix replaced by .png)."""
    return PurePosixPath(relpath).with_suffix(MASK_SUFFIX).as_posix()


class MaskStore:
    """The masks of one data folder, kept in `masks_dir`, with a cache for training.

    relpaths: the image relpaths this store serves (ImageFolderData passes its own); used by
        `annotated()` to turn mask files back into image relpaths (the image suffix is not kept
        on disk). Images saved through the store are learnt as well.
    `load` caches each mask at each requested size and re-reads it as soon as the file changes
    (its modification time, size or inode), so a mask re-painted in the UI is used on the very
    next batch. The cache is guarded by a lock; a pickled store loses only its caches.
    """

    def __init__(self, masks_dir: str | os.PathLike, relpaths: Iterable[str] | None = None):
        self.masks_dir = Path(masks_dir)
        if self.masks_dir.exists() and not self.masks_dir.is_dir():
            raise DatasetError(
                f"The mask folder {self.masks_dir} is a file. Choose a folder (it is created when the first mask is saved)."
            )
        self._image_for_key = {_mask_key(r): r for r in (relpaths or ())}
        self._start_caches()

    def _start_caches(self) -> None:
        """The lock and the caches, which a pickled store (a DataLoader worker's) starts anew."""
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple[str, tuple[int, int]], tuple[tuple, torch.Tensor | None]] = OrderedDict()
        self._read_paths: dict[str, Path] = {}
        self._inside_folders: dict[PurePosixPath, bool] = {}

    def __getstate__(self) -> dict:
        transient = ("_lock", "_cache", "_read_paths", "_inside_folders")
        return {key: value for key, value in self.__dict__.items() if key not in transient}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._start_caches()

    def __repr__(self) -> str:
        return f"MaskStore({str(self.masks_dir)!r})"

    def path_for(self, relpath: str) -> Path:
        """The mask file of image `relpath` (it may not exist yet)."""
        return mask_path(self.masks_dir, relpath)

    def _read_path(self, relpath: str) -> Path:
        """`path_for` once per file, its folder's links resolved once per folder: `load` runs for
        every image of every batch (0.4 s of a 2.2 s demo epoch resolving links). A link file, or
        a folder outside the mask folder, takes `path_for`'s full check and its error."""
        path = self._read_paths.get(relpath)
        if path is None:
            relative = relative_mask_path(relpath)
            if relative.parent not in self._inside_folders:
                try:
                    inside = (self.masks_dir / relative.parent).resolve().is_relative_to(self.masks_dir.resolve())
                except (OSError, ValueError):  # a link loop, a NUL byte: path_for says which
                    inside = False
                self._inside_folders[relative.parent] = inside
            path = self.masks_dir / relative
            if not self._inside_folders[relative.parent] or path.is_symlink():
                path = self.path_for(relpath)
            self._read_paths[relpath] = path
        return path

    def has(self, relpath: str) -> bool:
        """Whether image `relpath` has a mask on disk."""
        return self.path_for(relpath).is_file()

    def load(self, relpath: str, size: tuple[int, int]) -> torch.Tensor | None:
        """float32 HxW tensor in {-1, 0, +1} at size=(H, W), or None when there is no mask or it
        cannot be read (a warning says so, once per version of the file)."""
        size = _check_size(size)
        path = self._read_path(relpath)
        key = (relpath, size)
        try:
            info = path.stat()
        except FileNotFoundError:
            with self._lock:
                self._cache.pop(key, None)
            return None
        stamp = (info.st_mtime_ns, info.st_size, info.st_ino)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and hit[0] == stamp:
                self._cache.move_to_end(key)
                return hit[1].float() if hit[1] is not None else None
        # Decode outside the lock: the UI thread should never wait for the trainer's reads.
        import torch

        try:
            mask: torch.Tensor | None = torch.from_numpy(read_mask_array(path, size))
        except DatasetError as error:
            # One truncated mask aborted a whole run though the audit had said "cannot be
            # read": it counts as no mask, as a bad image is skipped (the failure is cached
            # with the file's stamp, so it is said once per version of the file).
            mask = None
            log.warning("%s; the image is trained without a mask", error)
        with self._lock:
            self._cache[key] = (stamp, mask)
            self._cache.move_to_end(key)
            while len(self._cache) > _CACHE_ENTRIES:
                self._cache.popitem(last=False)
        return mask.float() if mask is not None else None

    def load_array(self, relpath: str) -> np.ndarray | None:
        """np.int8 HxW in {-1, 0, +1} at the stored size, or None when there is no mask."""
        path = self.path_for(relpath)
        if not path.is_file():
            return None
        return read_mask_array(path)

    def save(self, relpath: str, mask: np.ndarray, meta: Mapping[str, object] | None = None) -> Path:
        """Write the mask of image `relpath` (atomic, see write_mask); returns its path."""
        path = self.path_for(relpath)
        write_mask(path, mask, meta)
        with self._lock:
            self._image_for_key[_mask_key(relpath)] = relpath
            self._forget(relpath)
        return path

    def delete(self, relpath: str) -> None:
        """Remove the mask of image `relpath`; nothing happens when it has none."""
        self.path_for(relpath).unlink(missing_ok=True)
        with self._lock:
            self._forget(relpath)

    def save_unless(self, relpath: str, mask: np.ndarray, meta: Mapping[str, object] | None = None, *, keep: Keep) -> bool:
        """`save`, unless `relpath` has a mask whose meta `keep` says must stay; whether it wrote.
        The check and the write are one step only under a writers' lock (`app.run.mask_folder.MaskFolder`)."""
        if self.has(relpath) and keep(self.meta(relpath)):
            return False
        self.save(relpath, mask, meta)
        return True

    def delete_unless(self, relpath: str, *, keep: Keep) -> bool:
        """`delete`, unless the mask's meta `keep` says it must stay; whether it deleted one."""
        if not self.has(relpath) or keep(self.meta(relpath)):
            return False
        self.delete(relpath)
        return True

    def annotated(self) -> list[str]:
        """Relpaths of the images that have a mask on disk, sorted.

        A mask whose image the store does not know is listed by its own relative path (ending
        in .png), which for PNG images is the image relpath.
        """
        if not self.masks_dir.is_dir():
            return []
        with self._lock:
            image_for_key = dict(self._image_for_key)
        found = []
        for path in self.masks_dir.rglob(f"*{MASK_SUFFIX}"):
            key = path.relative_to(self.masks_dir).as_posix()
            if any(part.startswith(".") for part in key.split("/")) or not path.is_file():
                continue  # temp files of an interrupted write, editor droppings
            found.append(image_for_key.get(key, key))
        return sorted(found)

    def meta(self, relpath: str) -> dict[str, str]:
        """The metadata saved with the mask of `relpath` ({} when it has no mask or none)."""
        path = self.path_for(relpath)
        return read_mask_meta(path) if path.is_file() else {}

    def _forget(self, relpath: str) -> None:
        """Drop the cached sizes of one mask (caller holds the lock)."""
        for key in [k for k in self._cache if k[0] == relpath]:
            del self._cache[key]
