"""Image files -> LMDB of Datums, like Caffe's `convert_imageset` (docs/CAFFE.md §5.2).

Input is a list file or an image folder:
- list file: one "path label" per line, split at the LAST space (paths may hold spaces),
  the label an integer; paths are relative to `root` (joined as a path, so "ROOT" and
  "ROOT/" mean the same);
- folder: `root/<class>/<image>` for every class subfolder in sorted order, the label being
  the class index (images directly in `root` get label 0); files are taken in sorted order.

Each image is read with OpenCV (colour: 3 channels BGR; `gray`: 1 channel) and, when both
resize_height and resize_width are > 0, resized bilinearly. The record is a raw Datum
(planar CHW uint8, channels/height/width set, encoded false) or, with `encoded`, an encoded
Datum: the file's own bytes when it was not resized and its extension is the encode type,
otherwise the image re-encoded as `encode_type` (default: the file's extension); the size
fields then stay 0. Keys are the 8-digit zero-padded entry index, "_", and the path as
listed (`00000042_n01/x.JPEG`); with `shuffle` the entries are shuffled (seeded) first, and
the index is the position after shuffling. `check_size` requires every raw record to have
the size of the first. Records are committed every 1000 and the database appears only when
complete (lmdb_writer.write_lmdb). Images are decoded on `threads` threads (order kept).

Errors: a malformed list line raises FormatError naming the list file and line; a missing
or undecodable image raises IoError / FormatError naming the line and the path, unless
`skip_bad`, which (like Caffe) logs it and leaves a gap in the key indices.

Tests: tests/data/test_convert_imageset.py.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from caffeonspark.data.datums import encoded_datum, raw_datum
from caffeonspark.data.image_codec import DecodePool, decode_image, encode_image, resize_image
from caffeonspark.data.lmdb_writer import write_lmdb
from caffeonspark.data.progress import progress
from caffeonspark.errors import CaffeOnSparkError, FormatError, IoError

__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageEntry",
    "read_image_list",
    "list_image_folder",
    "imageset_key",
    "imageset_records",
    "convert_imageset",
]

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
_CHUNK = 256


class ImageEntry(NamedTuple):
    path: str  # as listed (relative to the root)
    label: int
    origin: str  # "list.txt:12" or the folder, for messages


def read_image_list(list_file: str | os.PathLike[str]) -> list[ImageEntry]:
    """The (path, label) entries of a convert_imageset list file."""
    name = os.fspath(list_file)
    try:
        with open(name, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError as err:
        raise IoError(f"cannot read image list '{name}': {err}") from err
    entries = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        path, space, label = line.rstrip().rpartition(" ")
        if not space or not path:
            raise FormatError(f"{name}:{number}: expected 'path label', got {line!r}")
        try:
            entries.append(ImageEntry(path, int(label), f"{name}:{number}"))
        except ValueError:
            raise FormatError(f"{name}:{number}: label {label!r} is not an integer") from None
    return entries


def list_image_folder(root: str | os.PathLike[str]) -> tuple[list[ImageEntry], list[str]]:
    """Entries of an image folder (labels = sorted class subfolder index) and the class names."""
    base = Path(root)
    if not base.is_dir():
        raise IoError(f"image folder '{base}' does not exist")

    def images_in(folder: Path) -> list[Path]:
        return sorted(
            p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
        )

    classes = sorted(p.name for p in base.iterdir() if p.is_dir())
    entries = [ImageEntry(p.name, 0, str(base)) for p in images_in(base)]
    for label, name in enumerate(classes):
        for p in images_in(base / name):
            entries.append(ImageEntry(f"{name}/{p.name}", label, str(base)))
    return entries, classes


def imageset_key(index: int, path: str) -> bytes:
    """convert_imageset's key: 8-digit index, underscore, the listed path."""
    return f"{index:08d}_{path}".encode()


def _one_record(
    item: tuple[int, ImageEntry],
    root: str,
    gray: bool,
    resize: tuple[int, int],
    encoded: bool,
    encode_type: str,
) -> tuple[bytes, bytes, int] | None:
    index, entry = item
    where = f"{entry.origin}: image '{entry.path}'"
    full = os.path.join(root, entry.path) if root else entry.path
    try:
        with open(full, "rb") as handle:
            data = handle.read()
    except OSError as err:
        raise IoError(f"{where}: cannot read '{full}': {err}") from err
    image = decode_image(data, "gray" if gray else "color", f"{where}: ")
    resized = resize[0] > 0 and resize[1] > 0
    if resized:
        image = resize_image(image, resize[0], resize[1])
    if encoded:
        ext = os.path.splitext(entry.path)[1].lower()
        kind = (encode_type or ext.lstrip(".")).lower()
        if not resized and ext.lstrip(".") == kind:
            payload = data
        else:
            payload = encode_image(image, "." + kind)
        datum = encoded_datum(payload, entry.label)
        size = -1
    else:
        datum = raw_datum(image, entry.label)
        size = len(datum.data)
    return imageset_key(index, entry.path), datum.SerializeToString(), size


def imageset_records(
    entries: Sequence[ImageEntry],
    root: str | os.PathLike[str] = "",
    *,
    gray: bool = False,
    resize_height: int = 0,
    resize_width: int = 0,
    encoded: bool = False,
    encode_type: str = "",
    check_size: bool = False,
    skip_bad: bool = False,
    threads: int = 1,
    show_progress: bool | None = None,
) -> Iterator[tuple[bytes, bytes]]:
    """(key, serialized Datum) for each entry, in order (see the module doc)."""
    root_text = os.fspath(root)
    resize = (int(resize_height), int(resize_width))
    first_size: int | None = None

    def build(item: tuple[int, ImageEntry]) -> tuple[bytes, bytes, int] | None:
        try:
            return _one_record(item, root_text, gray, resize, encoded, encode_type)
        except CaffeOnSparkError as err:
            if not skip_bad:
                raise
            log.error("skipped: %s", err)
            return None

    numbered = list(enumerate(entries))
    with DecodePool(threads, name="convert") as pool:
        chunks = (numbered[i : i + _CHUNK] for i in range(0, len(numbered), _CHUNK))
        bar = progress(
            chunks, total=-(-len(numbered) // _CHUNK), desc="images (x256)", enabled=show_progress
        )
        for chunk in bar:
            for (index, entry), built in zip(chunk, pool.map(build, chunk), strict=True):
                if built is None:
                    continue
                key, value, size = built
                if check_size and size >= 0:
                    if first_size is None:
                        first_size = size
                    elif size != first_size:
                        raise FormatError(
                            f"{entry.origin}: image '{entry.path}' (key {index:08d}) has "
                            f"{size} bytes of pixels; the first image had {first_size}"
                        )
                yield key, value


def convert_imageset(
    root: str | os.PathLike[str],
    list_file: str | os.PathLike[str] | None,
    db_path: str | os.PathLike[str],
    *,
    shuffle: bool = False,
    seed: int = 0,
    overwrite: bool = False,
    **options: object,
) -> int:
    """Convert the images of `list_file` (or, when it is None, the folder `root`) into a
    Datum LMDB at `db_path`; returns the number of records. Options: see imageset_records."""
    if list_file is None:
        entries, classes = list_image_folder(root)
        log.info("%d images in %d classes under %s", len(entries), len(classes), root)
    else:
        entries = read_image_list(list_file)
    if shuffle:
        order = np.random.default_rng(seed).permutation(len(entries))
        entries = [entries[i] for i in order]
    records = imageset_records(entries, root, **options)  # type: ignore[arg-type]
    count = write_lmdb(db_path, records, overwrite=overwrite)
    log.info("wrote %d of %d images to %s", count, len(entries), db_path)
    return count
