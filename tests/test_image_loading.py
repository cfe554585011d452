"""Tests for datasets/image_loading.py: mode conversion to RGB and the per-file checks."""

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from datasets import DatasetError
from datasets.image_loading import check_image, load_rgb, to_rgb


def _png_header_only(path, width, height):
    """A PNG whose header claims width x height but holds almost no pixel data."""

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")
    )
    return path


def _rgb(image):
    return np.asarray(to_rgb(image))


def test_sixteen_bit_grayscale_png_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 1000, 25700, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    reopened = Image.open(tmp_path / "deep.png")
    assert reopened.mode.startswith("I")
    rgb = np.asarray(load_rgb(tmp_path / "deep.png"))
    # v / 257 rounded: 1000 -> 4 (not 255), 25700 -> 100, 65535 -> 255; grey in all channels.
    assert rgb.shape == (1, 4, 3)
    assert rgb[..., 0].tolist() == [[0, 4, 100, 255]]
    assert (rgb == rgb[..., :1]).all()


def test_32_bit_integer_modes():
    in_range = Image.fromarray(np.array([[0, 25700, 65535]], dtype=np.int32))
    assert in_range.mode == "I"
    assert _rgb(in_range)[..., 1].tolist() == [[0, 100, 255]]
    # Outside 16 bits: the image's own range is stretched to 0..255.
    wide = Image.fromarray(np.array([[-100, 0, 100_000]], dtype=np.int32))
    assert _rgb(wide)[..., 2].tolist() == [[0, 0, 255]]
    floats = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32))
    assert _rgb(floats)[..., 0].tolist() == [[0, 128, 255]]


def test_grayscale_and_bilevel():
    assert _rgb(Image.new("L", (2, 1), 77)).tolist() == [[[77, 77, 77]] * 2]
    assert _rgb(Image.new("1", (1, 1), 1)).tolist() == [[[255, 255, 255]]]


def test_palette_with_transparency_is_composited_over_white(tmp_path):
    palette = Image.new("P", (2, 1))
    palette.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    palette.putpixel((0, 0), 0)
    palette.putpixel((1, 0), 1)
    palette.save(tmp_path / "pal.png", transparency=0)
    reopened = Image.open(tmp_path / "pal.png")
    assert reopened.mode == "P" and "transparency" in reopened.info
    assert np.asarray(load_rgb(tmp_path / "pal.png")).tolist() == [[[255, 255, 255], [0, 0, 255]]]


def test_palette_without_transparency_keeps_colours():
    palette = Image.new("P", (1, 1))
    palette.putpalette([12, 34, 56] + [0] * 765)
    assert _rgb(palette).tolist() == [[[12, 34, 56]]]


def test_rgba_alpha_is_composited_over_white():
    rgba = Image.fromarray(np.array([[[10, 20, 30, 0], [10, 20, 30, 255], [200, 0, 0, 128]]], dtype=np.uint8), mode="RGBA")
    rgb = _rgb(rgba).astype(int)
    assert rgb[0, 0].tolist() == [255, 255, 255]  # hidden colour under alpha 0 never leaks
    assert rgb[0, 1].tolist() == [10, 20, 30]
    expected = np.array([200, 0, 0]) * 128 / 255 + 255 * 127 / 255  # about (227, 127, 127)
    assert np.abs(rgb[0, 2] - expected).max() <= 1


def test_grayscale_with_alpha():
    la = Image.fromarray(np.array([[[50, 255], [50, 0]]], dtype=np.uint8), mode="LA")
    assert _rgb(la).tolist() == [[[50, 50, 50], [255, 255, 255]]]


def test_exif_orientation_is_applied(tmp_path):
    picture = Image.new("RGB", (20, 10), (0, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    picture.save(tmp_path / "phone.jpg", exif=exif)
    assert load_rgb(tmp_path / "phone.jpg").size == (10, 20)


@pytest.mark.parametrize("kind", ["png", "jpg"])
def test_truncated_files_are_reported(tmp_path, kind):
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    whole = tmp_path / f"whole.{kind}"
    Image.fromarray(noise).save(whole)
    cut = tmp_path / f"cut.{kind}"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    assert check_image(whole) is None
    assert "truncated" in check_image(cut)


def test_other_unusable_files(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("not really a picture")
    assert check_image(tmp_path / "empty.png") == "empty file (0 bytes)"
    assert check_image(tmp_path / "text.jpg").startswith("not an image")
    assert check_image(tmp_path / "gone.png").startswith("cannot read the file")


def test_huge_images_are_refused_from_the_header_without_decoding(tmp_path):
    # 100 MP: over our 64 MP default (and Pillow's warning limit). Decoding would report the
    # missing pixel data as "truncated"; "too large" shows the header alone decided.
    reason = check_image(_png_header_only(tmp_path / "big.png", 10_000, 10_000))
    assert reason.startswith("too large") and "100,000,000" in reason
    # 400 MP: Pillow's own decompression-bomb error, caught and reported the same way.
    assert check_image(_png_header_only(tmp_path / "bomb.png", 20_000, 20_000)).startswith("too large")
    Image.new("L", (12, 10)).save(tmp_path / "small.png")
    assert check_image(tmp_path / "small.png", max_pixels=119).startswith("too large: 12 x 10")
    assert check_image(tmp_path / "small.png", max_pixels=120) is None


def test_load_rgb_names_the_file_it_cannot_use(tmp_path):
    (tmp_path / "broken.png").write_text("nope")
    with pytest.raises(DatasetError, match="broken.png"):
        load_rgb(tmp_path / "broken.png")
