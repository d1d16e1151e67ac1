"""Robust decoding: every fixture here is made with PIL so the edge case is known to be present."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dreambench.dataset.images import MAX_PIXELS, MIN_SIDE, file_sha256, load_image
from dreambench.errors import BenchError

RED, BLUE = (255, 0, 0), (0, 0, 255)


def _close(pixel: tuple[int, ...], expected: tuple[int, ...], tol: int = 12) -> bool:
    return all(abs(int(a) - int(b)) <= tol for a, b in zip(pixel, expected, strict=True))


def test_mpo_reads_frame_zero(tmp_path: Path) -> None:
    path = tmp_path / "two_frames.jpg"
    Image.new("RGB", (32, 24), RED).save(
        path, "MPO", save_all=True, append_images=[Image.new("RGB", (32, 24), BLUE)]
    )
    with Image.open(path) as raw:  # the fixture really is a two-picture MPO
        assert (raw.format, raw.n_frames) == ("MPO", 2)
    image = load_image(path)
    assert image.mode == "RGB" and image.size == (32, 24)
    assert _close(image.getpixel((5, 5)), RED)


def test_official_mpo_files_decode_to_frame_zero(dreambench_data: Path) -> None:
    root = dreambench_data / "dataset" if (dreambench_data / "dataset").is_dir() else dreambench_data
    mpo = []
    for path in sorted(root.glob("*/*.jpg")):
        with Image.open(path) as raw:
            if raw.format == "MPO":
                mpo.append(path)
    assert len(mpo) == 42
    path = mpo[0]
    with Image.open(path) as raw:
        raw.seek(0)
        frame0 = np.asarray(raw.convert("RGB"))
    assert np.array_equal(np.asarray(load_image(path)), frame0)


def test_exif_orientation_6_is_applied(tmp_path: Path) -> None:
    # Left half red, right half blue, stored landscape with "rotate 90 CW to display" (6).
    array = np.zeros((20, 40, 3), dtype=np.uint8)
    array[:, :20] = RED
    array[:, 20:] = BLUE
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.jpg"
    Image.fromarray(array).save(path, exif=exif, quality=95)
    image = load_image(path)
    assert image.size == (20, 40)  # portrait after transposition
    assert _close(image.getpixel((10, 5)), RED, tol=40)  # the left edge is now at the top
    assert _close(image.getpixel((10, 34)), BLUE, tol=40)


def test_cmyk_jpeg_becomes_rgb(tmp_path: Path) -> None:
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(path)
    with Image.open(path) as raw:
        assert raw.mode == "CMYK"
    image = load_image(path)
    assert image.mode == "RGB" and _close(image.getpixel((8, 8)), RED)


def test_rgba_transparency_is_composited_over_white(tmp_path: Path) -> None:
    array = np.zeros((8, 8, 4), dtype=np.uint8)  # fully transparent black
    array[0, 0] = (0, 0, 0, 255)  # one opaque black pixel
    array[0, 1] = (0, 0, 0, 128)  # half-transparent black
    path = tmp_path / "alpha.png"
    Image.fromarray(array, mode="RGBA").save(path)
    image = load_image(path)
    assert image.mode == "RGB"
    assert image.getpixel((3, 3)) == (255, 255, 255)
    assert image.getpixel((0, 0)) == (0, 0, 0)
    assert _close(image.getpixel((1, 0)), (127, 127, 127), tol=2)


def test_la_transparency_is_composited_over_white(tmp_path: Path) -> None:
    path = tmp_path / "la.png"
    Image.new("LA", (8, 8), (0, 0)).save(path)
    assert load_image(path).getpixel((1, 1)) == (255, 255, 255)


def test_palette_and_grayscale_become_rgb(tmp_path: Path) -> None:
    palette = Image.new("RGB", (8, 8), (10, 200, 30)).quantize(colors=4)
    assert palette.mode == "P"
    palette.save(tmp_path / "p.png")
    gray = tmp_path / "l.png"
    Image.new("L", (8, 8), 100).save(gray)
    assert load_image(tmp_path / "p.png").getpixel((2, 2)) == (10, 200, 30)
    assert load_image(gray).getpixel((2, 2)) == (100, 100, 100)


def test_palette_with_transparent_index_goes_white(tmp_path: Path) -> None:
    image = Image.new("P", (8, 8), 0)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * (256 * 3 - 6))
    image.putpixel((0, 0), 1)
    path = tmp_path / "pt.png"
    image.save(path, transparency=0)
    loaded = load_image(path)
    assert loaded.getpixel((0, 0)) == RED
    assert loaded.getpixel((3, 3)) == (255, 255, 255)


def test_sixteen_bit_grayscale_is_scaled_not_clipped(tmp_path: Path) -> None:
    array = np.tile(np.array([[0, 257 * 128, 65535] + [0] * 5], dtype=np.uint16), (8, 1))
    path = tmp_path / "i16.png"
    Image.fromarray(array).save(path)
    with Image.open(path) as raw:
        assert raw.mode.startswith("I")
    image = load_image(path)
    assert [image.getpixel((x, 0)) for x in range(3)] == [(0, 0, 0), (128, 128, 128), (255, 255, 255)]


def test_result_is_detached_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / "a.jpg"
    Image.new("RGB", (8, 8), RED).save(path)
    image = load_image(path)
    path.unlink()
    assert getattr(image, "fp", None) is None
    assert _close(image.getpixel((4, 4)), RED)


def test_truncated_jpeg_is_an_error_naming_the_file(tmp_path: Path) -> None:
    noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    whole = tmp_path / "whole.jpg"
    Image.fromarray(noise).save(whole, quality=95)
    data = whole.read_bytes()
    cut = tmp_path / "truncated.jpg"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(BenchError, match="truncated.jpg"):
        load_image(cut)


def test_text_file_named_jpg_is_an_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("not an image\n")
    with pytest.raises(BenchError, match="notes.jpg"):
        load_image(path)


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match="gone.png"):
        load_image(tmp_path / "gone.png")


def test_file_sha256_matches_hashlib(tmp_path: Path) -> None:
    path = tmp_path / "blob.bin"
    data = bytes(range(256)) * 10_000  # more than one read chunk
    path.write_bytes(data)
    assert file_sha256(path) == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("size", [(1, 1), (7, 64), (64, 7)])
def test_an_image_below_the_minimum_size_is_refused_naming_it(size: tuple[int, int], tmp_path: Path) -> None:
    path = tmp_path / "tiny.png"
    Image.new("RGB", size, RED).save(path)
    with pytest.raises(
        BenchError, match=rf"{re.escape(str(path))} is {size[0]}x{size[1]} pixels; .* at least 8x8"
    ):
        load_image(path)
    Image.new("RGB", (MIN_SIDE, MIN_SIDE), RED).save(path)
    assert load_image(path).size == (MIN_SIDE, MIN_SIDE)


def test_an_image_above_the_pixel_limit_is_refused_before_decoding(tmp_path: Path) -> None:
    """The limit is read from the header: a 10000x9000 PNG is refused without decoding 270 MB."""
    path = tmp_path / "huge.png"
    Image.new("1", (10_000, 9_000)).save(path)  # 1-bit: a small file and a small write
    with pytest.raises(
        BenchError, match=rf"{re.escape(str(path))} is 10000x9000 pixels \(90 MP\); the limit is 89.5 MP"
    ):
        load_image(path)
    assert MAX_PIXELS == 89_478_485


def test_accepted_images_decode_to_the_pixels_they_always_did(tmp_path: Path) -> None:
    """The size limits only refuse: a 16-bit greyscale PNG is scaled, an EXIF-rotated JPEG turned
    upright, both exactly as before the limits existed (the policy is not in the scoring identity)."""
    gray = tmp_path / "g16.png"
    Image.fromarray(np.full((16, 16), 257 * 200, dtype=np.uint16)).save(gray)
    assert load_image(gray).getpixel((0, 0)) == (200, 200, 200)
    rotated = tmp_path / "r.jpg"
    wide = Image.new("RGB", (40, 20), RED)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    wide.save(rotated, exif=exif.tobytes())
    assert load_image(rotated).size == (20, 40)
