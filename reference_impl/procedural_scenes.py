"""Procedurally generated captioned scenes: the pretraining data of the ``tiny-trained`` base model.

``scene(rng, size)`` draws one image and its caption, e.g. "a photo of a red ball on the beach":
a coloured, sometimes patterned object (ball, box, cone, egg, bar) of varying size near the centre
of a background drawn from a small vocabulary of scenes. The scene words are those the DreamBench
prompts use ("in the snow", "on the beach", "with a mountain in the background", ...), each rendered
as a crude colour layout, so that a prior learnt from them responds to the benchmark's prompts.
``texture(rng, size)`` draws 1/f ("natural-looking") coloured noise, used to train the VAE on
statistics closer to photographs than flat shapes.

No photograph enters: the model pretrained on these has never seen a DreamBooth subject, so its
renders are an honest floor. Everything is drawn from the numpy generator it is given (seeded by
reference_impl/train_tiny_base.py), and images are drawn at twice the size and box-averaged down,
so edges are anti-aliased.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.85, 0.12, 0.10),
    "orange": (0.95, 0.55, 0.10),
    "yellow": (0.95, 0.85, 0.15),
    "green": (0.20, 0.65, 0.20),
    "blue": (0.15, 0.30, 0.85),
    "purple": (0.55, 0.20, 0.70),
    "pink": (0.95, 0.55, 0.70),
    "brown": (0.50, 0.30, 0.15),
    "white": (0.93, 0.93, 0.92),
    "black": (0.08, 0.08, 0.09),
    "grey": (0.50, 0.50, 0.52),
}
SHAPES = ("ball", "box", "cone", "egg", "bar")
PATTERNS = ("", "striped ", "spotted ", "shiny ")

Image = np.ndarray  # (size, size, 3) float32 in [0, 1]


def _grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:n, 0:n].astype(np.float32)
    return (ys + 0.5) / n, (xs + 0.5) / n


def _jitter(rng: np.random.Generator, colour: tuple[float, float, float], amount: float = 0.08) -> np.ndarray:
    return np.clip(np.asarray(colour, np.float32) + rng.normal(0, amount, 3).astype(np.float32), 0, 1)


def _fill(n: int, colour: np.ndarray) -> Image:
    return np.broadcast_to(colour, (n, n, 3)).astype(np.float32).copy()


def _vsplit(n: int, top: np.ndarray, bottom: np.ndarray, at: float) -> Image:
    ys, _ = _grid(n)
    return np.where((ys < at)[..., None], top, bottom).astype(np.float32)


def _noise(rng: np.random.Generator, n: int, amount: float) -> np.ndarray:
    return rng.normal(0, amount, (n, n, 1)).astype(np.float32)


def _sky(rng: np.random.Generator) -> np.ndarray:
    return _jitter(rng, (0.55, 0.75, 0.95))


def _bg_plain(rng: np.random.Generator, n: int) -> tuple[Image, str]:
    name = rng.choice(list(COLOURS))
    return _fill(n, _jitter(rng, COLOURS[name])), f"on a {name} background"


def _bg_striped(rng: np.random.Generator, n: int) -> tuple[Image, str]:
    a, b = rng.choice(list(COLOURS), 2, replace=False)
    ys, xs = _grid(n)
    freq = rng.uniform(3, 8)
    angle = rng.uniform(0, np.pi)
    phase = np.sin(2 * np.pi * freq * (xs * np.cos(angle) + ys * np.sin(angle)))
    img = np.where((phase > 0)[..., None], _jitter(rng, COLOURS[a]), _jitter(rng, COLOURS[b]))
    return img.astype(np.float32), f"on a striped {a} and {b} background"


def _bg_checkered(rng: np.random.Generator, n: int) -> tuple[Image, str]:
    a, b = rng.choice(list(COLOURS), 2, replace=False)
    ys, xs = _grid(n)
    k = rng.integers(3, 7)
    cells = ((np.floor(ys * k) + np.floor(xs * k)) % 2 == 0)[..., None]
    return np.where(cells, _jitter(rng, COLOURS[a]), _jitter(rng, COLOURS[b])).astype(np.float32), (
        f"on a checkered {a} and {b} background"
    )


def _bg_jungle(rng: np.random.Generator, n: int) -> tuple[Image, str]:
    img = _fill(n, _jitter(rng, (0.12, 0.40, 0.12)))
    img += _smooth_noise(rng, n, 4) * 0.25
    return img, "in the jungle"


def _bg_snow(rng: np.random.Generator, n: int) -> tuple[Image, str]:
    img = _vsplit(
        n, _jitter(rng, (0.80, 0.85, 0.92)), _jitter(rng, (0.95, 0.95, 0.97), 0.03), rng.uniform(0.2, 0.5)
    )
    return img + _noise(rng, n, 0.03), "in the snow"


def _bg_beach(rng: np.random.Generator, n: int) -> tuple[Image, str]:
    return _vsplit(n, _sky(rng), _jitter(rng, (0.90, 0.80, 0.55)), rng.uniform(0.35, 0.6)), "on the beach"


def _bg_cobblestone(rng: np.random.Generator, n: int) -> tuple[Image, str]:
    ys, xs = _grid(n)
    k = rng.integers(5, 9)
    mortar = ((ys * k) % 1 < 0.15) | (((xs * k) + 0.5 * (np.floor(ys * k) % 2)) % 1 < 0.15)
    img = np.where(mortar[..., None], _jitter(rng, (0.25, 0.25, 0.25)), _jitter(rng, (0.55, 0.53, 0.50)))
    return img.astype(np.float32) + _noise(rng, n, 0.04), "on a cobblestone street"


def _bg_fabric(rng: np.random.Generator, n: int) -> tuple[Image, str]:
    ys, xs = _grid(n)
    waves = 0.08 * np.sin(2 * np.pi * (3 * xs + 2 * ys + rng.uniform()))[..., None]
    return _fill(n, _jitter(rng, COLOURS["pink"])) + waves.astype(np.float32), "on top of pink fabric"


def _bg_wood(rng: np.random.Generator, n: int) -> tuple[Image, str]:
    ys, xs = _grid(n)
    grain = 0.10 * np.sin(2 * np.pi * (rng.uniform(6, 12) * ys + 0.3 * np.sin(6 * xs)))[..., None]
    return _fill(n, _jitter(rng, (0.60, 0.40, 0.20))) + grain.astype(np.float32), "on top of a wooden floor"


def _bg_city(rng: np.random.Generator, n: int) -> tuple[Image, str]:
    img = _fill(n, _sky(rng))
    ys, xs = _grid(n)
    x = 0.0
    while x < 1:
        w = rng.uniform(0.08, 0.2)
        top = rng.uniform(0.15, 0.6)
        mask = (xs >= x) & (xs < x + w) & (ys > top)
        img[mask] = _jitter(rng, (0.40, 0.40, 0.45), 0.1)
        x += w
    return img, "with a city in the background"


def _bg_mountain(rng: np.random.Generator, n: int) -> tuple[Image, str]:
    img = _fill(n, _sky(rng))
    ys, xs = _grid(n)
    peak_x, peak_y = rng.uniform(0.3, 0.7), rng.uniform(0.1, 0.35)
    mask = ys > peak_y + 1.2 * np.abs(xs - peak_x)
    img[mask] = _jitter(rng, (0.40, 0.38, 0.42))
    img[mask & (ys < peak_y + 0.12)] = _jitter(rng, (0.95, 0.95, 0.97), 0.02)
    return img, "with a mountain in the background"


def _bg_house(rng: np.random.Generator, n: int) -> tuple[Image, str]:
    img = _vsplit(n, _sky(rng), _jitter(rng, (0.25, 0.55, 0.20)), 0.75)
    ys, xs = _grid(n)
    left = rng.uniform(0.05, 0.45)
    wall = (xs > left) & (xs < left + 0.5) & (ys > 0.35) & (ys < 0.8)
    roof = (ys > 0.15) & (ys <= 0.35) & (np.abs(xs - left - 0.25) < (ys - 0.15) * 1.4)
    img[wall] = _jitter(rng, COLOURS["blue"])
    img[roof] = _jitter(rng, (0.45, 0.15, 0.10))
    return img, "with a blue house in the background"


def _bg_rug_forest(rng: np.random.Generator, n: int) -> tuple[Image, str]:
    img = _vsplit(
        n, _jitter(rng, (0.12, 0.40, 0.12)), _jitter(rng, COLOURS["purple"]), rng.uniform(0.45, 0.65)
    )
    return img + _smooth_noise(rng, n, 4) * 0.15, "on top of a purple rug in a forest"


def _bg_wheat(rng: np.random.Generator, n: int) -> tuple[Image, str]:
    img = _vsplit(n, _sky(rng), _jitter(rng, (0.90, 0.75, 0.30)), rng.uniform(0.3, 0.5))
    _, xs = _grid(n)
    return img + (0.06 * np.sin(2 * np.pi * 20 * xs))[..., None].astype(np.float32), (
        "with a wheat field in the background"
    )


def _bg_water(rng: np.random.Generator, n: int) -> tuple[Image, str]:
    ys, xs = _grid(n)
    waves = 0.08 * np.sin(2 * np.pi * (8 * ys + 0.5 * np.sin(5 * xs + rng.uniform(0, 6))))[..., None]
    return _fill(n, _jitter(rng, (0.15, 0.40, 0.70))) + waves.astype(np.float32), "floating on top of water"


def _bg_grass(rng: np.random.Generator, n: int) -> tuple[Image, str]:
    img = _fill(n, _jitter(rng, (0.25, 0.60, 0.15)))
    ys, xs = _grid(n)
    for _ in range(rng.integers(2, 5)):
        cy, cx = rng.uniform(0, 1, 2)
        img[(ys - cy) ** 2 + (xs - cx) ** 2 < 0.004] = _jitter(rng, COLOURS["yellow"])
    return img + _noise(rng, n, 0.04), "on top of green grass with sunflowers around it"


def _bg_white_rug(rng: np.random.Generator, n: int) -> tuple[Image, str]:
    img = _vsplit(
        n, _jitter(rng, (0.60, 0.55, 0.50)), _jitter(rng, (0.92, 0.92, 0.90), 0.03), rng.uniform(0.3, 0.5)
    )
    return img + _noise(rng, n, 0.03), "on top of a white rug"


def _bg_dirt_road(rng: np.random.Generator, n: int) -> tuple[Image, str]:
    img = _vsplit(n, _sky(rng), _jitter(rng, (0.50, 0.38, 0.25)), rng.uniform(0.3, 0.5))
    return img + _noise(rng, n, 0.05), "on top of a dirt road"


BACKGROUNDS: tuple[Callable[[np.random.Generator, int], tuple[Image, str]], ...] = (
    _bg_plain,
    _bg_striped,
    _bg_checkered,
    _bg_jungle,
    _bg_snow,
    _bg_beach,
    _bg_cobblestone,
    _bg_fabric,
    _bg_wood,
    _bg_city,
    _bg_mountain,
    _bg_house,
    _bg_rug_forest,
    _bg_wheat,
    _bg_water,
    _bg_grass,
    _bg_white_rug,
    _bg_dirt_road,
)


def _smooth_noise(rng: np.random.Generator, n: int, cells: int) -> np.ndarray:
    """Coarse random field bilinearly upsampled to ``n`` x ``n``, one channel, zero mean."""
    coarse = rng.normal(0, 1, (cells + 1, cells + 1)).astype(np.float32)
    pos = np.linspace(0, cells, n, dtype=np.float32)
    i = np.minimum(pos.astype(int), cells - 1)
    f = pos - i
    rows = coarse[i] * (1 - f)[:, None] + coarse[i + 1] * f[:, None]
    field = rows[:, i] * (1 - f)[None, :] + rows[:, i + 1] * f[None, :]
    return field[..., None]


def _object_mask(rng: np.random.Generator, n: int, shape: str) -> np.ndarray:
    ys, xs = _grid(n)
    cy, cx = 0.55 + rng.normal(0, 0.08), 0.5 + rng.normal(0, 0.1)
    r = rng.uniform(0.15, 0.35)
    dy, dx = ys - cy, xs - cx
    if shape == "ball":
        return dy**2 + dx**2 < r**2
    if shape == "box":
        return (np.abs(dy) < r) & (np.abs(dx) < r * rng.uniform(0.7, 1.2))
    if shape == "cone":
        return (dy > -r) & (dy < r) & (np.abs(dx) < (dy + r) * 0.6)
    if shape == "egg":
        return (dy / (r * 1.25)) ** 2 + (dx / (r * 0.8)) ** 2 < 1
    return (np.abs(dy) < r * 0.35) & (np.abs(dx) < r * 1.3)  # bar


def _paint_object(rng: np.random.Generator, img: Image, mask: np.ndarray, colour: str, pattern: str) -> None:
    n = img.shape[0]
    ys, xs = _grid(n)
    base = _jitter(rng, COLOURS[colour])
    body = np.broadcast_to(base, (n, n, 3)).astype(np.float32).copy()
    # light from the upper left: a soft shading gradient makes objects look solid
    body *= (1.15 - 0.35 * (ys + xs) / 2)[..., None]
    if pattern == "striped ":
        other = _jitter(rng, COLOURS[rng.choice([c for c in COLOURS if c != colour])])
        stripes = (np.sin(2 * np.pi * 10 * (xs + ys)) > 0)[..., None]
        body = np.where(stripes, body, other)
    elif pattern == "spotted ":
        other = _jitter(rng, COLOURS[rng.choice([c for c in COLOURS if c != colour])])
        spots = (np.sin(2 * np.pi * 9 * xs) * np.sin(2 * np.pi * 9 * ys) > 0.5)[..., None]
        body = np.where(spots, other, body)
    elif pattern == "shiny ":
        cy, cx = ys[mask].mean() - 0.06, xs[mask].mean() - 0.06
        body += (0.6 * np.exp(-((ys - cy) ** 2 + (xs - cx) ** 2) / 0.003))[..., None]
    # a soft shadow below the object
    shadow = np.roll(mask, max(1, n // 24), axis=0) & ~mask
    img[shadow] *= 0.7
    img[mask] = body[mask]


def _downsample(img: Image) -> Image:
    n = img.shape[0] // 2
    return img.reshape(n, 2, n, 2, 3).mean(axis=(1, 3))


def scene(rng: np.random.Generator, size: int) -> tuple[Image, str]:
    """One captioned scene: ``(image, caption)``, image (size, size, 3) float32 in [0, 1]."""
    n = 2 * size
    background = BACKGROUNDS[rng.integers(len(BACKGROUNDS))]
    img, where = background(rng, n)
    img = np.ascontiguousarray(img, dtype=np.float32)
    shape = SHAPES[rng.integers(len(SHAPES))]
    colour = str(rng.choice(list(COLOURS)))
    pattern = PATTERNS[rng.integers(len(PATTERNS))]
    _paint_object(rng, img, _object_mask(rng, n, shape), colour, pattern)
    img = img * rng.uniform(0.8, 1.15) + _noise(rng, n, 0.015)  # exposure, sensor noise
    lead = "a photo of a" if rng.uniform() < 0.5 else "a"
    return np.clip(_downsample(img), 0, 1), f"{lead} {pattern}{colour} {shape} {where}"


def texture(rng: np.random.Generator, size: int) -> Image:
    """1/f coloured noise (image statistics of natural photographs), (size, size, 3) in [0, 1]."""
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.fftfreq(size)[None, :]
    radius = np.sqrt(fy**2 + fx**2)
    radius[0, 0] = 1.0
    channels = []
    mix = rng.normal(0, 1, (3, 3)) * 0.4 + np.eye(3)
    for _ in range(3):
        spectrum = (
            rng.normal(size=(size, size)) + 1j * rng.normal(size=(size, size))
        ) / radius ** rng.uniform(1.0, 1.6)
        spectrum[0, 0] = 0
        channels.append(np.real(np.fft.ifft2(spectrum)))
    field = np.stack(channels, -1) @ mix.T
    field = field / (field.std() + 1e-8) * rng.uniform(0.1, 0.25)
    return np.clip(field + rng.uniform(0.2, 0.8, 3), 0, 1).astype(np.float32)
