"""Which image of the data folder an annotation means, from the name another tool gave it.

Other tools name images in their own way: COCO's `file_name` ("img_0012.jpg", or
"train/3/img_0012.jpg"), Label Studio's `data.image` ("/data/upload/4/8f3a2b1c-img_0012.jpg",
"/data/local-files/?d=cats/3/img_0012.jpg", "s3://bucket/3/img_0012.jpg"), a mask folder's
own layout ("3/img_0012.png", "img_0012_mask.png"). The rule, in order:

1. the longest tail of the name's folders that is an image's relpath ("train/3/img_0012" ends
   with "3/img_0012"); suffixes are ignored throughout, so "img_0012.png" finds "img_0012.jpg";
2. else the file name alone, when exactly one image has it;
3. else the same with Label Studio's upload prefix ("8f3a2b1c-") taken off.

A name that two images share (the same file name in two class folders) is *ambiguous*, one that
no image has is *unmatched*; both are reported, never guessed.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Iterable, Optional
from urllib.parse import parse_qs, unquote, urlparse

_UPLOAD_PREFIX = re.compile(r"^[0-9a-f]{8}-")  # Label Studio renames uploads to "<8 hex>-<name>"


def _stem_parts(path: str) -> tuple[str, ...]:
    """The path's parts with the last one's suffix removed ("3/img.jpg" -> ("3", "img"))."""
    pure = PurePosixPath(path.replace("\\", "/"))
    parts = [p for p in pure.parts if p not in ("", ".", "/")]
    if not parts:
        return ()
    parts[-1] = PurePosixPath(parts[-1]).stem
    return tuple(parts)


def name_from_reference(reference: str) -> str:
    """The file path inside an image reference of another tool: a URL's path, Label Studio's
    `?d=` local-file parameter, or the text itself; percent-escapes undone."""
    text = reference.strip()
    parsed = urlparse(text)
    query = parse_qs(parsed.query)
    if "d" in query and query["d"]:
        return unquote(query["d"][0])
    if parsed.scheme and parsed.scheme not in ("file",) and len(parsed.scheme) > 1:
        return unquote(parsed.path)
    if parsed.scheme == "file":
        return unquote(parsed.path)
    return unquote(text)


@dataclass(frozen=True)
class Match:
    """What a name matched: `relpath` (None when none), or the images it could mean."""

    relpath: Optional[str]
    candidates: tuple[str, ...] = ()  # more than one: ambiguous

    @property
    def ambiguous(self) -> bool:
        return self.relpath is None and len(self.candidates) > 1


class ImageIndex:
    """The data folder's relpaths, looked up by the names other tools give them."""

    def __init__(self, relpaths: Iterable[str], strip_suffix: str = ""):
        """strip_suffix: an ending of mask file names to ignore ("_mask" for "img_0012_mask.png")."""
        self.relpaths = list(relpaths)
        self.strip_suffix = strip_suffix
        self._by_parts: dict[tuple[str, ...], list[str]] = defaultdict(list)  # the whole relpath
        self._by_name: dict[str, list[str]] = defaultdict(list)
        self._longest = 1
        for relpath in self.relpaths:
            parts = _stem_parts(relpath)
            self._longest = max(self._longest, len(parts))
            self._by_parts[parts].append(relpath)
            self._by_name[parts[-1]].append(relpath)

    def match(self, name: str) -> Match:
        """The image `name` (a path, URL or file name) means; see the module docstring."""
        parts = _stem_parts(name)
        if self.strip_suffix and parts and parts[-1].endswith(self.strip_suffix) and parts[-1] != self.strip_suffix:
            parts = parts[:-1] + (parts[-1][: -len(self.strip_suffix)],)
        if not parts:
            return Match(None)
        found = self._match_parts(parts)
        if found.relpath is None and not found.ambiguous:
            bare = _UPLOAD_PREFIX.sub("", parts[-1])
            if bare != parts[-1] and bare:
                found = self._match_parts(parts[:-1] + (bare,))
        return found

    def _match_parts(self, parts: tuple[str, ...]) -> Match:
        # Longest tail first: "train/3/img" tries ("train","3","img"), ("3","img"), then ("img",).
        for start in range(max(0, len(parts) - self._longest), len(parts)):
            tail = parts[start:]
            candidates = self._by_parts.get(tail, [])
            if len(candidates) == 1:
                return Match(candidates[0])
            if len(candidates) > 1:
                return Match(None, tuple(candidates))
        candidates = self._by_name.get(parts[-1], [])
        if len(candidates) == 1:
            return Match(candidates[0])
        return Match(None, tuple(candidates))
