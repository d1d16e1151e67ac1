"""LPIPS (Zhang et al. 2018, v0.1, AlexNet trunk): the perceptual distance behind the DIV metric.

LPIPS between images x and y, with AlexNet feature maps f_l (l = 1..5, ReLU outputs), each
unit-normalised along channels at every position (f^_l), and non-negative per-channel weights w_l
(the "linear calibration layers", fitted to human judgements):

    d(x, y) = sum_l  mean_{h,w}  sum_c  w_{l,c} * (f^_l(x)[c,h,w] - f^_l(y)[c,h,w])^2      >= 0

d(x, x) = 0 and d(x, y) = d(y, x). Typical values lie in [0, ~0.8].

Weights (never downloaded here):
  - the AlexNet trunk: torchvision's ImageNet weights (`AlexNet_Weights.IMAGENET1K_V1`, file
    `alexnet-owt-7be5be79.pth`), from $DREAMBENCH_LPIPS_BACKBONE (a file) or the torch hub cache
    (`torch.hub.get_dir()/checkpoints/`, i.e. $TORCH_HOME/hub/checkpoints, default
    ~/.cache/torch/hub/checkpoints);
  - the linear layers: shipped inside the `lpips` package (lpips/weights/v0.1/alex.pth).
  - smoke: seeded random trunk AND linear layers in one safetensors file under
    cache_root()/weights/smoke/, written once and then loaded by path through the same loader.
    Uncalibrated: the numbers say nothing about perceptual similarity.

Preprocessing: RGB -> resize to LPIPS_SIZE x LPIPS_SIZE (bicubic, aspect ratio not kept) -> [-1, 1].
LPIPS compares the two feature maps position by position, so both images must have the same size;
a fixed size also makes DIV independent of the resolution each method generates at. The whole image
is kept (no crop): a crop could hide differences near the borders. Square images (what every
DreamBench method renders) are simply resized.

The network runs in fp32 on every device: LPIPS divides by feature norms with eps=1e-10, which
underflows to 0 in fp16 and turns all-zero ReLU columns into NaN.
"""

from __future__ import annotations

import hashlib
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dreambench.atomic import atomic_write_bytes
from dreambench.cache_root import cache_root
from dreambench.errors import BenchError
from dreambench.metrics.embedder import EmbedderId, resolve_device
from dreambench.metrics.weights import WeightsSource, file_sha256

if TYPE_CHECKING:
    import torch
    from PIL import Image

LPIPS_BACKEND = "lpips"
LPIPS_ARCH = "alex-lpips-v0.1"
LPIPS_SIZE = 256
BACKBONE_ENV = "DREAMBENCH_LPIPS_BACKBONE"
BACKBONE_FILE = "alexnet-owt-7be5be79.pth"
# torchvision names its weight files <name>-<first 8 hex digits of the file's sha256>.pth.
BACKBONE_SHA256_PREFIX = "7be5be79"
BACKBONE_TAG = "torchvision:alexnet/IMAGENET1K_V1"
LINEAR_TAG = "lpips:v0.1/alex"
DEFAULT_PAIR_BATCH = 64
DEFAULT_IMAGE_BATCH = 32
# AlexNet `features` index -> LPIPS slice (lpips.pretrained_networks.alexnet keeps the index as the
# module name inside its slice): slice1 = 0-1, slice2 = 2-4, slice3 = 5-7, slice4 = 8-9, slice5 = 10-11.
_SLICE_OF_FEATURE = {
    i: s for s, idx in enumerate(((0, 1), (2, 3, 4), (5, 6, 7), (8, 9), (10, 11)), 1) for i in idx
}
# Channels of the five AlexNet ReLU outputs LPIPS compares.
ALEX_CHANNELS = (64, 192, 384, 256, 256)


@dataclass(frozen=True)
class LpipsWeights:
    """Local LPIPS weights ready to load.

    backbone: a file holding torchvision AlexNet keys (`features.<i>.weight|bias`; others ignored).
    linear: a file holding the LPIPS linear layers (`lin<l>.model.1.weight`). The smoke file holds
    both, so backbone == linear there. tag: provenance; sha256: of the one file, or of the two
    files' sha256s joined by "+" (so the id changes whenever either file's bytes do).
    """

    backbone: Path
    linear: Path
    tag: str
    sha256: str
    calibrated: bool


def shipped_linear_weights() -> Path:
    """The v0.1 AlexNet linear-layer weights that the `lpips` package ships in site-packages."""
    import lpips

    path = Path(lpips.__file__).resolve().parent / "weights" / "v0.1" / "alex.pth"
    if not path.is_file():
        raise BenchError(f"the lpips package has no {path}; reinstall it with `pip install lpips==0.1.4`")
    return path


def _missing_backbone_hint(where: str) -> str:
    from torch.hub import get_dir

    return (
        f"LPIPS AlexNet backbone weights not found ({where}): download torchvision's AlexNet "
        f"IMAGENET1K_V1 weights https://download.pytorch.org/models/{BACKBONE_FILE} into "
        f"{Path(get_dir()) / 'checkpoints'}/ or set {BACKBONE_ENV} to that file, or use `--preset smoke` "
        f"(seeded random weights, uncalibrated)"
    )


def _combined(backbone: Path, linear: Path, tag: str) -> LpipsWeights:
    sha = hashlib.sha256(f"{file_sha256(backbone)}+{file_sha256(linear)}".encode()).hexdigest()
    return LpipsWeights(backbone, linear, tag, sha, calibrated=True)


def _local_backbone(path: Path, origin: str) -> LpipsWeights:
    path = path.expanduser().resolve()
    if not path.is_file():
        raise BenchError(_missing_backbone_hint(f"{origin}={path} is not a file"))
    return _combined(path, shipped_linear_weights(), f"file:{path}+{LINEAR_TAG}")


def _pinned() -> LpipsWeights:
    from torch.hub import get_dir

    override = os.environ.get(BACKBONE_ENV)
    if override:
        return _local_backbone(Path(override), BACKBONE_ENV)
    path = Path(get_dir()) / "checkpoints" / BACKBONE_FILE
    if not path.is_file():
        raise BenchError(_missing_backbone_hint(f"no {path}"))
    if not file_sha256(path).startswith(BACKBONE_SHA256_PREFIX):
        raise BenchError(
            f"{path} is corrupt (its sha256 does not start with {BACKBONE_SHA256_PREFIX}); delete it and "
            f"download https://download.pytorch.org/models/{BACKBONE_FILE} again"
        )
    return _combined(path, shipped_linear_weights(), f"{BACKBONE_TAG}+{LINEAR_TAG}")


def smoke_lpips_file(seed: int = 0) -> Path:
    """Path of the seeded smoke LPIPS weights, written once (atomically) on first use.

    One safetensors file with torchvision AlexNet `features.*` keys (default random init under
    `torch.manual_seed(seed)`) and LPIPS `lin<l>.model.1.weight` keys drawn uniform in [0, 1) / C_l:
    non-negative like the trained layers (LPIPS clamps them at 0 while training), so d >= 0 holds.
    """
    path = cache_root() / "weights" / "smoke" / f"lpips-alex-seed{seed}.safetensors"
    if path.is_file():
        return path
    import torch
    import torchvision
    from safetensors.torch import save

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        features = torchvision.models.alexnet(weights=None).features
        tensors = {f"features.{k}": v.detach().clone().contiguous() for k, v in features.state_dict().items()}
        for layer, channels in enumerate(ALEX_CHANNELS):
            tensors[f"lin{layer}.model.1.weight"] = torch.rand(1, channels, 1, 1) / channels
    atomic_write_bytes(path, save(tensors, metadata={"format": "pt"}))
    return path


def resolve_lpips_weights(source: WeightsSource) -> LpipsWeights:
    """pinned: torchvision AlexNet ($DREAMBENCH_LPIPS_BACKBONE, else the torch hub cache) + the
    shipped v0.1 linear layers; path: that AlexNet file + the shipped linear layers; smoke: the
    seeded smoke file. Never downloads; missing weights raise a one-line BenchError saying what to get."""
    if source.kind == "smoke":
        path = smoke_lpips_file(source.seed).resolve()
        return LpipsWeights(path, path, f"smoke:seed{source.seed}", file_sha256(path), calibrated=False)
    if source.kind == "path":
        return _local_backbone(Path(source.path), "weights path")
    return _pinned()


def lpips_state_dict(
    backbone: dict[str, torch.Tensor], linear: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Map torchvision AlexNet `features.<i>.*` keys onto `lpips.LPIPS`'s `net.slice<s>.<i>.*` and
    keep the `lin<l>.*` keys (also filed under `lins.<l>.*`). Other keys (AlexNet's classifier) are dropped."""
    out: dict[str, torch.Tensor] = {}
    for key, value in backbone.items():
        if key.startswith("features."):
            index, rest = key.removeprefix("features.").split(".", 1)
            if not index.isdigit() or int(index) not in _SLICE_OF_FEATURE:
                raise BenchError(f"backbone key {key!r} is not a torchvision AlexNet `features` layer (0-11)")
            out[f"net.slice{_SLICE_OF_FEATURE[int(index)]}.{index}.{rest}"] = value
    for key, value in linear.items():
        match = re.fullmatch(r"lins?\.?(\d+)\.(.+)", key)
        if match:
            # LPIPS registers each linear layer twice (lin<l> and lins.<l>, one shared tensor).
            out[f"lin{match[1]}.{match[2]}"] = value
            out[f"lins.{match[1]}.{match[2]}"] = value
    return out


def build_lpips_module(weights: LpipsWeights) -> torch.nn.Module:
    """`lpips.LPIPS(net='alex', v0.1)` holding exactly `weights` (every trunk and linear tensor is
    checked; nothing is left at its random init). The same code path for real and smoke weights."""
    import lpips

    from dreambench.metrics.convert import load_state_dict_file

    # pnet_rand=True: the trunk starts random (no torchvision download); pretrained=True with the
    # shipped model_path builds the linear layers; both are then overwritten from `weights`.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchvision's deprecation warning for `pretrained=`
        module = lpips.LPIPS(
            net="alex",
            version="0.1",
            pretrained=True,
            pnet_rand=True,
            model_path=str(shipped_linear_weights()),
            verbose=False,
        )
    backbone = load_state_dict_file(weights.backbone)
    linear = backbone if weights.linear == weights.backbone else load_state_dict_file(weights.linear)
    state = lpips_state_dict(backbone, linear)
    result = module.load_state_dict(state, strict=False)
    # The scaling layer's shift/scale are constants of the code, not weights.
    missing = [k for k in result.missing_keys if not k.startswith("scaling_layer.")]
    if missing or result.unexpected_keys:
        raise BenchError(
            f"LPIPS weights {weights.tag} do not fit AlexNet LPIPS: missing {missing[:3]}, "
            f"unexpected {list(result.unexpected_keys)[:3]}"
        )
    return module.eval()


class LpipsNet:
    """LPIPS distances between PIL images, batched, on CPU or CUDA (fp32).

    `id` is an `EmbedderId` (backend "lpips", arch "alex-lpips-v0.1", weights tag, sha256) like the
    DINO / CLIP embedders; `calibrated` is False for smoke weights.
    """

    def __init__(
        self,
        weights: LpipsWeights,
        device: str = "auto",
        image_batch: int = DEFAULT_IMAGE_BATCH,
        pair_batch: int = DEFAULT_PAIR_BATCH,
    ) -> None:
        if image_batch < 1 or pair_batch < 1:
            raise BenchError(
                f"batch sizes must be >= 1, got image_batch={image_batch}, pair_batch={pair_batch}"
            )
        self.device = resolve_device(device)
        self.module = build_lpips_module(weights).to(self.device)
        self.weights = weights
        self.calibrated = weights.calibrated
        self.image_batch = image_batch
        self.pair_batch = pair_batch
        self.id = EmbedderId(LPIPS_BACKEND, LPIPS_ARCH, weights.tag, weights.sha256)

    @classmethod
    def load(cls, source: WeightsSource | None = None, device: str = "auto") -> LpipsNet:
        """Resolve `source` (default: pinned real weights) and build the network."""
        return cls(resolve_lpips_weights(source or WeightsSource.pinned()), device=device)

    @classmethod
    def smoke(cls, seed: int = 0, device: str = "auto") -> LpipsNet:
        return cls.load(WeightsSource.smoke(seed), device=device)

    # -- pixels and features ---------------------------------------------------------------------

    @staticmethod
    def pixels(images: Sequence[Image.Image]) -> torch.Tensor:
        """(N,) PIL images -> (N, 3, LPIPS_SIZE, LPIPS_SIZE) float32 in [-1, 1]."""
        import torch
        from PIL import Image

        arrays = [
            np.asarray(
                (im if im.mode == "RGB" else im.convert("RGB")).resize(
                    (LPIPS_SIZE, LPIPS_SIZE), Image.Resampling.BICUBIC
                ),
                dtype=np.float32,
            )
            for im in images
        ]
        batch = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
        return batch / 127.5 - 1.0

    def features(self, images: Sequence[Image.Image]) -> list[torch.Tensor]:
        """Channel-normalised AlexNet feature maps f^_l of each image: 5 tensors (N, C_l, H_l, W_l)."""
        import lpips
        import torch

        if len(images) == 0:
            raise BenchError("LPIPS needs at least one image, got none")
        chunks: list[list[torch.Tensor]] = []
        with torch.inference_mode():
            for start in range(0, len(images), self.image_batch):
                x = self.pixels(images[start : start + self.image_batch]).to(self.device)
                outs = self.module.net(self.module.scaling_layer(x))
                chunks.append([lpips.normalize_tensor(o) for o in outs])
        return [torch.cat(layer) for layer in zip(*chunks)]

    def _pair_distances(
        self, fa: list[torch.Tensor], fb: list[torch.Tensor], ia: np.ndarray, ib: np.ndarray
    ) -> np.ndarray:
        """d(a_ia[k], b_ib[k]) for every k, from precomputed features (the LPIPS formula above)."""
        import torch

        out: list[np.ndarray] = []
        with torch.inference_mode():
            for start in range(0, len(ia), self.pair_batch):
                a = torch.as_tensor(ia[start : start + self.pair_batch], device=self.device)
                b = torch.as_tensor(ib[start : start + self.pair_batch], device=self.device)
                total = 0
                for lin, la, lb in zip(self.module.lins, fa, fb):
                    total = total + lin((la[a] - lb[b]) ** 2).mean(dim=(1, 2, 3))
                out.append(total.float().cpu().numpy())
        return np.concatenate(out).astype(np.float64) if out else np.zeros(0)

    # -- distances -------------------------------------------------------------------------------

    def distances(self, images_a: Sequence[Image.Image], images_b: Sequence[Image.Image]) -> np.ndarray:
        """d(a_k, b_k) for aligned pairs: two length-N lists -> (N,) float64, each >= 0 with real weights."""
        if len(images_a) != len(images_b):
            raise BenchError(f"distances needs aligned lists, got {len(images_a)} and {len(images_b)} images")
        index = np.arange(len(images_a))
        return self._pair_distances(self.features(images_a), self.features(images_b), index, index)

    def distance_matrix(self, images: Sequence[Image.Image]) -> np.ndarray:
        """D[i, j] = d(images_i, images_j): (N, N) float64, symmetric, zero diagonal.

        Each image goes through AlexNet once; only the N(N-1)/2 pairs i < j are evaluated.
        """
        return self.distance_matrices([images])[0]

    def distance_matrices(self, groups: Sequence[Sequence[Image.Image]]) -> list[np.ndarray]:
        """`distance_matrix` of each group, with every image of every group in the same AlexNet
        batches (one subject's 100 images: ~2x faster on CPU than group by group). Pairs are only
        formed within a group. Holds all groups' feature maps at once (~2.5 MB per image)."""
        sizes = [len(g) for g in groups]
        feats = self.features([im for g in groups for im in g])
        offsets = np.cumsum([0, *sizes])
        pairs = [np.triu_indices(n, k=1) for n in sizes]
        ia = np.concatenate([np.asarray(i, dtype=np.int64) + o for (i, _), o in zip(pairs, offsets)])
        ib = np.concatenate([np.asarray(j, dtype=np.int64) + o for (_, j), o in zip(pairs, offsets)])
        flat = self._pair_distances(feats, feats, ia, ib)
        matrices: list[np.ndarray] = []
        start = 0
        for n, (i, j) in zip(sizes, pairs):
            matrix = np.zeros((n, n), dtype=np.float64)
            matrix[i, j] = flat[start : start + len(i)]
            matrix[j, i] = matrix[i, j]
            matrices.append(matrix)
            start += len(i)
        return matrices

    def pairwise_mean(self, images: Sequence[Image.Image]) -> float:
        """Mean LPIPS distance over the N(N-1)/2 distinct pairs of `images` (N >= 2)."""
        from dreambench.metrics.diversity import mean_distinct_pairs

        if len(images) < 2:
            raise BenchError(f"a pairwise mean needs at least 2 images, got {len(images)}")
        return mean_distinct_pairs(self.distance_matrix(images))
