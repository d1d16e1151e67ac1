"""Robust image decoding: every real or generated image enters the benchmark through `load_image`.

Why each rule exists:
- 42 of the official files are multi-picture JPEGs (MPO); the benchmark uses frame 0.
- Phones store rotation as EXIF orientation; the pixels are turned upright so embedders see what a
  person sees (`ImageOps.exif_transpose`).
- Embedders expect 3-channel RGB; transparency is composited over white (not black, which is what
  a bare ``convert("RGB")`` does) so a cut-out object keeps a neutral background.
- A truncated or non-image file is an error naming the file, never a silently grey image.
- 16-bit greyscale is scaled to 8 bits (x / 257, rounded), not clipped as Pillow's own conversion does.
- An image smaller than MIN_SIDE pixels on a side carries no picture to compare (a 1x1 pixel, an
  icon) and is refused; one above MAX_PIXELS is refused from its header before it is decoded
  (Pillow's decompression-bomb threshold, which Pillow itself only warns about up to twice that).
  8000x8000 (64 MP) is accepted: the embedders resize every image to 224-256 px anyway.

The same rules hold for real and generated images and for `bench run` and `bench eval`: every
decode goes through `load_image`. The size limits only refuse; no image accepted before they existed
decodes to other pixels, so they are not part of the scoring identity (a rule that changes the
pixels of an accepted image would have to be).
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from dreambench.errors import BenchError

IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".webp")
_CHUNK = 1 << 20

#: Smallest accepted width and height, in pixels.
MIN_SIDE = 8
#: Largest accepted width x height: Pillow's default decompression-bomb threshold (89.5 MP).
MAX_PIXELS = 89_478_485


def file_sha256(path: Path) -> str:
    """sha256 hex digest of the file's bytes (read in 1 MiB chunks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _over_white(image: Image.Image) -> Image.Image:
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _high_bit_depth_to_rgb(image: Image.Image) -> Image.Image:
    # Pillow's own I;16 -> L conversion clips at 255 instead of scaling, which turns a 16-bit
    # photo white; scale the 16-bit range down to 8 bits instead.
    values = np.asarray(image, dtype=np.float64)
    gray = np.clip(np.rint(values / 257.0), 0, 255).astype(np.uint8)
    return Image.fromarray(gray, mode="L").convert("RGB")


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to RGB: alpha over white, 16-bit scaled, CMYK/L/P converted."""
    mode = image.mode
    if mode == "RGB":
        return image.copy()
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in image.info):
        return _over_white(image)
    if mode == "L" and "transparency" in image.info:
        return _over_white(image)
    if mode.startswith("I;16") or mode == "I":
        return _high_bit_depth_to_rgb(image)
    return image.convert("RGB")


def load_image(path: Path) -> Image.Image:
    """Decode one image file to a fully loaded RGB `PIL.Image.Image` (no open file handle).

    Frame 0 of multi-frame files (MPO, GIF, TIFF); EXIF orientation applied; RGB via `to_rgb`.
    Raises BenchError naming the file when it is missing, truncated, not an image, smaller than
    MIN_SIDE on a side or larger than MAX_PIXELS (module docstring).
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():
            # MAX_PIXELS is enforced below as a refusal; Pillow's own warning would be a second line.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            opened = Image.open(path)
        with opened as image:
            _check_size(path, image.size)
            image.seek(0)
            image.load()
            upright = ImageOps.exif_transpose(image)
            return to_rgb(upright)
    except FileNotFoundError:
        raise BenchError(f"image file {path} not found") from None
    except UnidentifiedImageError:
        raise BenchError(f"{path} is not an image Pillow can read (valid: JPEG, PNG, WebP, ...)") from None
    except Image.DecompressionBombError:
        raise BenchError(f"image {path} is over {MAX_PIXELS / 1e6:.1f} MP, the limit (downscale it)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise BenchError(f"cannot decode image {path}: {exc}") from None


def _check_size(path: Path, size: tuple[int, int]) -> None:
    width, height = size
    if min(width, height) < MIN_SIDE:
        raise BenchError(
            f"image {path} is {width}x{height} pixels; images must be at least {MIN_SIDE}x{MIN_SIDE}"
        )
    if width * height > MAX_PIXELS:
        raise BenchError(
            f"image {path} is {width}x{height} pixels ({width * height / 1e6:.0f} MP); "
            f"the limit is {MAX_PIXELS / 1e6:.1f} MP (downscale it)"
        )
