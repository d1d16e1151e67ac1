"""Robust image decoding: every real or generated image enters the benchmark through `load_image`.

Why each rule exists:
- 42 of the official files are multi-picture JPEGs (MPO); the benchmark uses frame 0.
- Phones store rotation as EXIF orientation; the pixels are turned upright so embedders see what a
  person sees (`ImageOps.exif_transpose`).
- Embedders expect 3-channel RGB; transparency is composited over white (not black, which is what
  a bare ``convert("RGB")`` does) so a cut-out object keeps a neutral background.
- A truncated or non-image file is an error naming the file, never a silently grey image.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from dreambench.errors import BenchError

IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".webp")
_CHUNK = 1 << 20


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
    Raises BenchError naming the file when it is missing, truncated or not an image.
    """
    path = Path(path)
    try:
        with Image.open(path) as image:
            image.seek(0)
            image.load()
            upright = ImageOps.exif_transpose(image)
            return to_rgb(upright)
    except FileNotFoundError:
        raise BenchError(f"image file {path} not found") from None
    except UnidentifiedImageError:
        raise BenchError(f"{path} is not an image Pillow can read (valid: JPEG, PNG, WebP, ...)") from None
    except Image.DecompressionBombError as exc:
        raise BenchError(f"image {path} is too large to decode safely: {exc}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise BenchError(f"cannot decode image {path}: {exc}") from None
