"""convert_imageset (python/caffeonspark/data/convert_imageset.py) and its CLI verb: records
are checked at the wire level against Datums encoded here from docs/CAFFE.md §5 field numbers
(channels=1, height=2, width=3, data=4, label=5, encoded=7), keys follow Caffe's
`%08d_<path>`, and reading back gives the original pixels (OpenCV BGR decode of the real
JPEG fixtures, or exact PNG pixels) and labels."""

from __future__ import annotations

from pathlib import Path

import cv2
import lmdb
import numpy as np
import pytest

from caffeonspark import cli, errors
from caffeonspark.data.convert_imageset import convert_imageset, read_image_list
from caffeonspark.data.lmdb_writer import iter_lmdb

# -- an independent protobuf wire encoder / decoder for Datum -------------------------------


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def wire_datum(channels=0, height=0, width=0, data=b"", label=0, encoded=False) -> bytes:
    """Datum bytes in field-number order, scalars written only when non-default (proto2
    optional fields set by Caffe's converters)."""
    out = bytearray()
    for number, value in ((1, channels), (2, height), (3, width)):
        if value:
            out += varint(number << 3) + varint(value)
    out += varint(4 << 3 | 2) + varint(len(data)) + data
    out += varint(5 << 3) + varint(label)
    if encoded:
        out += varint(7 << 3) + varint(1)
    return bytes(out)


def parse_wire(buf: bytes) -> dict[int, object]:
    """Field number -> value for a message of varint and length-delimited fields."""
    fields: dict[int, object] = {}
    pos = 0

    def read_varint():
        nonlocal pos
        shift = result = 0
        while True:
            byte = buf[pos]
            pos += 1
            result |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return result

    while pos < len(buf):
        tag = read_varint()
        number, wire_type = tag >> 3, tag & 7
        if wire_type == 0:
            fields[number] = read_varint()
        elif wire_type == 2:
            length = read_varint()
            fields[number] = buf[pos : pos + length]
            pos += length
        else:
            raise AssertionError(f"unexpected wire type {wire_type}")
    return fields


def read_db(path: Path) -> list[tuple[bytes, bytes]]:
    return list(iter_lmdb(path))


def bgr_chw(data: bytes, flag=cv2.IMREAD_COLOR) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
    return image[None] if image.ndim == 2 else image.transpose(2, 0, 1)


# -- tests ----------------------------------------------------------------------------------


def test_real_jpegs_with_labels_txt(anchors, tmp_path):
    root = anchors / "caffeonspark"
    db = tmp_path / "images_lmdb"
    assert convert_imageset(root, root / "labels.txt", db) == 4
    records = read_db(db)
    names = [line.split()[0] for line in (root / "labels.txt").read_text().splitlines()]
    labels = [int(line.split()[1]) for line in (root / "labels.txt").read_text().splitlines()]
    assert [k for k, _ in records] == [f"{i:08d}_{n}".encode() for i, n in enumerate(names)]
    for (_, value), name, label in zip(records, names, labels, strict=True):
        pixels = bgr_chw((root / name).read_bytes())
        assert value == wire_datum(*pixels.shape, pixels.tobytes(), label)
        fields = parse_wire(value)
        c, h, w = fields[1], fields[2], fields[3]
        got = np.frombuffer(fields[4], np.uint8).reshape(c, h, w)
        np.testing.assert_array_equal(got, pixels)
        assert fields[5] == label and 7 not in fields


def write_pngs(folder: Path, names: list[str], seed=0, size=(6, 5)) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    pixels = {}
    for name in names:
        image = rng.integers(0, 256, size=(*size, 3), dtype=np.uint8)
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / name), image)
        pixels[name] = image.transpose(2, 0, 1)
    return pixels


def test_list_lines_split_at_the_last_space_and_keys_keep_the_path(tmp_path):
    pixels = write_pngs(tmp_path, ["my cat.png", "sub dir/a b c.png"])
    listing = tmp_path / "list.txt"
    listing.write_text("my cat.png 3\n\nsub dir/a b c.png 11\n")
    assert [(e.path, e.label) for e in read_image_list(listing)] == [
        ("my cat.png", 3),
        ("sub dir/a b c.png", 11),
    ]
    db = tmp_path / "db"
    convert_imageset(str(tmp_path), listing, db)  # root without trailing slash
    records = read_db(db)
    assert [k for k, _ in records] == [b"00000000_my cat.png", b"00000001_sub dir/a b c.png"]
    fields = parse_wire(records[1][1])
    np.testing.assert_array_equal(
        np.frombuffer(fields[4], np.uint8).reshape(3, 6, 5), pixels["sub dir/a b c.png"]
    )
    assert fields[5] == 11


def test_gray_resize_and_check_size(tmp_path):
    pixels = write_pngs(tmp_path, ["a.png", "b.png"], size=(12, 9))
    write_pngs(tmp_path, ["c.png"], seed=1, size=(7, 7))
    (tmp_path / "list.txt").write_text("a.png 0\nb.png 1\nc.png 2\n")
    db = tmp_path / "gray"
    convert_imageset(
        tmp_path, tmp_path / "list.txt", db, gray=True, resize_height=4, resize_width=6
    )
    for (_, value), name in zip(read_db(db), ["a.png", "b.png"], strict=False):
        fields = parse_wire(value)
        assert (fields[1], fields[2], fields[3]) == (1, 4, 6)
        gray = cv2.imread(str(tmp_path / name), cv2.IMREAD_GRAYSCALE)
        want = cv2.resize(gray, (6, 4), interpolation=cv2.INTER_LINEAR)
        np.testing.assert_array_equal(np.frombuffer(fields[4], np.uint8).reshape(4, 6), want)
    assert pixels  # colour originals
    with pytest.raises(errors.FormatError, match=r"list.txt:3: image 'c.png' \(key 00000002\)"):
        convert_imageset(tmp_path, tmp_path / "list.txt", tmp_path / "sized", check_size=True)
    assert not (tmp_path / "sized").exists()  # a failed conversion leaves no database


def test_encoded_keeps_file_bytes_or_reencodes(tmp_path, anchors):
    root = anchors / "caffeonspark"
    db = tmp_path / "enc"
    convert_imageset(root, root / "labels.txt", db, encoded=True)
    for key, value in read_db(db):
        name = key.decode().split("_", 1)[1]
        assert value == wire_datum(
            data=(root / name).read_bytes(), label=int(name[0] == "d"), encoded=True
        )
    db2 = tmp_path / "enc_png"
    convert_imageset(
        root,
        root / "labels.txt",
        db2,
        encoded=True,
        encode_type="png",
        resize_height=32,
        resize_width=40,
    )
    for key, value in read_db(db2):
        fields = parse_wire(value)
        assert fields[7] == 1 and 1 not in fields and 2 not in fields and 3 not in fields
        assert fields[4][:8] == b"\x89PNG\r\n\x1a\n"
        name = key.decode().split("_", 1)[1]
        want = cv2.resize(cv2.imread(str(root / name)), (40, 32)).transpose(2, 0, 1)
        np.testing.assert_array_equal(bgr_chw(fields[4]), want)


def test_shuffle_is_seeded_and_keys_follow_the_new_order(tmp_path):
    names = [f"img{i}.png" for i in range(12)]
    write_pngs(tmp_path, names)
    (tmp_path / "list.txt").write_text("".join(f"{n} {i}\n" for i, n in enumerate(names)))
    orders = []
    for run in range(2):
        db = tmp_path / f"shuffled{run}"
        convert_imageset(tmp_path, tmp_path / "list.txt", db, shuffle=True, seed=7)
        keys = [k.decode() for k, _ in read_db(db)]
        assert [k[:8] for k in keys] == [f"{i:08d}" for i in range(12)]
        orders.append([k[9:] for k in keys])
    assert orders[0] == orders[1] and orders[0] != names and sorted(orders[0]) == sorted(names)


def test_image_folder_labels_are_sorted_class_indices(tmp_path):
    write_pngs(tmp_path / "imgs", ["zebra/1.png", "ant/2.png", "ant/1.png", "mole/x.png"])
    (tmp_path / "imgs" / "ant" / "notes.txt").write_text("not an image")
    db = tmp_path / "folder_db"
    assert convert_imageset(tmp_path / "imgs", None, db) == 4
    got = [(k.decode(), parse_wire(v)[5]) for k, v in read_db(db)]
    assert got == [
        ("00000000_ant/1.png", 0),
        ("00000001_ant/2.png", 0),
        ("00000002_mole/x.png", 1),
        ("00000003_zebra/1.png", 2),
    ]


def test_missing_and_broken_images_and_bad_lines(tmp_path):
    write_pngs(tmp_path, ["ok.png"])
    (tmp_path / "broken.png").write_bytes(b"not a png")
    (tmp_path / "list.txt").write_text("ok.png 0\nmissing.png 1\nbroken.png 2\nok.png 3\n")
    with pytest.raises(errors.IoError, match=r"list.txt:2: image 'missing.png'"):
        convert_imageset(tmp_path, tmp_path / "list.txt", tmp_path / "db")
    assert convert_imageset(tmp_path, tmp_path / "list.txt", tmp_path / "db", skip_bad=True) == 2
    assert [k for k, _ in read_db(tmp_path / "db")] == [b"00000000_ok.png", b"00000003_ok.png"]
    (tmp_path / "bad.txt").write_text("ok.png 0\nnolabel\n")
    with pytest.raises(errors.FormatError, match=r"bad.txt:2: expected 'path label'"):
        read_image_list(tmp_path / "bad.txt")
    (tmp_path / "bad2.txt").write_text("ok.png zero\n")
    with pytest.raises(errors.FormatError, match=r"bad2.txt:1: label 'zero' is not an integer"):
        read_image_list(tmp_path / "bad2.txt")


def test_cli_convert_imageset(anchors, tmp_path, capsys):
    root = anchors / "caffeonspark"
    db = tmp_path / "cli_db"
    assert (
        cli.main(
            [
                "convert-imageset",
                str(root) + "/",
                str(root / "labels.txt"),
                str(db),
                "-resize_height",
                "20",
                "-resize_width",
                "30",
                "--shuffle",
                "-threads",
                "2",
            ]
        )
        == 0
    )
    assert "4 images" in capsys.readouterr().out
    env = lmdb.open(str(db), readonly=True, lock=False)
    assert env.stat()["entries"] == 4
    env.close()
    for _, value in read_db(db):
        fields = parse_wire(value)
        assert (fields[1], fields[2], fields[3]) == (3, 20, 30)
