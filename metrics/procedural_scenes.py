"""Procedurally generated scenes: the training images of the smoke embedders (never the benchmark's photos).

`scene(rng, size)` draws one RGB image: a background (two-colour gradient, stripes, checkerboard or
smooth colour noise) with one to three objects (ellipses, rectangles, polygons, stars), each filled
with a flat colour or its own texture; about one image in sixteen is degenerate (a flat colour, pixel
noise or smooth noise), so that the embedders also see what they must set apart. Everything is drawn
from `rng` (numpy Generator): the same seed gives the same images.
"""

from __future__ import annotations

import colorsys
import math

import numpy as np
from PIL import Image, ImageDraw


def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    h, s, v = rng.random(), rng.uniform(0.0, 1.0) ** 0.7, rng.uniform(0.15, 1.0)
    r, g, b = colorsys.hsv_to_rgb(h, s, v)
    return int(r * 255), int(g * 255), int(b * 255)


def _two_tone(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    a, b = np.array(_colour(rng), np.float32), np.array(_colour(rng), np.float32)
    return a * mask[..., None] + b * (1.0 - mask[..., None])


def _smooth_noise(size: int, rng: np.random.Generator, cells: int) -> np.ndarray:
    grid = (rng.random((cells, cells, 3)) * 255).astype(np.uint8)
    return np.asarray(Image.fromarray(grid).resize((size, size), Image.BICUBIC), np.float32)


def texture(size: int, rng: np.random.Generator) -> np.ndarray:
    """A size x size x 3 float32 texture in [0, 255]."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    kind = rng.integers(4)
    angle = rng.uniform(0, math.pi)
    u = xx * math.cos(angle) + yy * math.sin(angle)
    if kind == 0:  # gradient
        return _two_tone((u - u.min()) / max(float(np.ptp(u)), 1.0), rng)
    if kind == 1:  # stripes
        period = rng.uniform(4, size / 3)
        return _two_tone((np.sin(2 * math.pi * u / period) > 0).astype(np.float32), rng)
    if kind == 2:  # checkerboard
        cell = rng.integers(4, max(5, size // 4))
        return _two_tone(((xx // cell + yy // cell) % 2).astype(np.float32), rng)
    return _smooth_noise(size, rng, int(rng.integers(2, 9)))


def _shape_mask(size: int, rng: np.random.Generator) -> np.ndarray:
    mask = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(mask)
    cx, cy = rng.uniform(0.2, 0.8, 2) * size
    r = rng.uniform(0.12, 0.4) * size
    kind = rng.integers(4)
    if kind == 0:
        rx, ry = r, r * rng.uniform(0.4, 1.0)
        draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=255)
    elif kind == 1:
        rx, ry = r, r * rng.uniform(0.3, 1.0)
        draw.rectangle([cx - rx, cy - ry, cx + rx, cy + ry], fill=255)
    else:
        n = int(rng.integers(3, 8)) * (2 if kind == 3 else 1)
        start = rng.uniform(0, 2 * math.pi)
        points = []
        for i in range(n):
            radius = r * (rng.uniform(0.35, 0.55) if kind == 3 and i % 2 else rng.uniform(0.7, 1.0))
            theta = start + 2 * math.pi * i / n
            points.append((cx + radius * math.cos(theta), cy + radius * math.sin(theta)))
        draw.polygon(points, fill=255)
    return np.asarray(mask, np.float32) / 255.0


def degenerate(size: int, rng: np.random.Generator) -> np.ndarray:
    """A flat colour, pixel noise or smooth noise image (uint8, size x size x 3)."""
    kind = rng.integers(3)
    if kind == 0:
        return np.broadcast_to(np.array(_colour(rng), np.uint8), (size, size, 3)).copy()
    if kind == 1:
        return rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    return _smooth_noise(size, rng, int(rng.integers(2, 6))).clip(0, 255).astype(np.uint8)


def scene(rng: np.random.Generator, size: int = 128) -> np.ndarray:
    """One generated RGB scene, uint8 array of shape (size, size, 3)."""
    if rng.random() < 1 / 16:
        return degenerate(size, rng)
    image = texture(size, rng)
    for _ in range(int(rng.integers(1, 4))):
        mask = _shape_mask(size, rng)[..., None]
        fill = texture(size, rng) if rng.random() < 0.5 else np.array(_colour(rng), np.float32)
        image = image * (1.0 - mask) + fill * mask
    return image.clip(0, 255).astype(np.uint8)
