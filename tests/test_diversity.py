"""DIV and the LPIPS network: invariances, agreement with the lpips package's own forward, weight
loading (real-weights path with a stand-in trunk, smoke file written once, offline refusal)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dreambench.errors import BenchError
from dreambench.metrics.convert import load_state_dict_file
from dreambench.metrics.diversity import div_for_prompt, div_for_subject, mean_distinct_pairs
from dreambench.metrics.lpips_net import (
    BACKBONE_ENV,
    BACKBONE_FILE,
    LPIPS_SIZE,
    LpipsNet,
    resolve_lpips_weights,
    shipped_linear_weights,
    smoke_lpips_file,
)
from dreambench.metrics.metric_registry import get_metric
from dreambench.metrics.weights import WeightsSource


@pytest.fixture(scope="session")
def net() -> LpipsNet:
    return LpipsNet.smoke(device="cpu")


def noise(seed: int, size: int = 64) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))


def structured(kind: str, size: int = 64) -> Image.Image:
    """Simple distinct scenes: gradient, stripes, checkerboard, disc."""
    y, x = np.mgrid[0:size, 0:size] / size
    if kind == "gradient":
        g = x
    elif kind == "stripes":
        g = (np.sin(x * 40) > 0).astype(float)
    elif kind == "checker":
        g = ((np.floor(x * 8) + np.floor(y * 8)) % 2).astype(float)
    else:
        g = (((x - 0.5) ** 2 + (y - 0.5) ** 2) < 0.1).astype(float)
    rgb = np.stack([g, 1 - g, 0.5 * g + 0.25], axis=-1)
    return Image.fromarray((rgb * 255).astype(np.uint8))


# -- the pure helper -------------------------------------------------------------------------------


def test_mean_distinct_pairs_matches_a_loop() -> None:
    rng = np.random.default_rng(1)
    d = rng.random((5, 5))
    expected = np.mean([d[i, j] for i in range(5) for j in range(i + 1, 5)])
    assert mean_distinct_pairs(d) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("bad", [np.zeros((1, 1)), np.zeros((2, 3)), np.zeros(4)])
def test_mean_distinct_pairs_rejects_bad_shapes(bad: np.ndarray) -> None:
    with pytest.raises(ValueError):
        mean_distinct_pairs(bad)


# -- DIV -------------------------------------------------------------------------------------------


def test_identical_images_give_zero(net: LpipsNet) -> None:
    assert div_for_prompt(net, [noise(3)] * 4) == pytest.approx(0.0, abs=1e-6)


def test_distinct_noise_gives_positive_div(net: LpipsNet) -> None:
    assert div_for_prompt(net, [noise(s) for s in range(4)]) > 1e-4


def test_duplicates_lower_div(net: LpipsNet) -> None:
    a, b, c, d = (structured(k) for k in ("gradient", "stripes", "checker", "disc"))
    with_duplicate = div_for_prompt(net, [a, a, c, d])
    distinct = div_for_prompt(net, [a, b, c, d])
    assert 0 < with_duplicate < distinct


def test_symmetry_and_matrix_layout(net: LpipsNet) -> None:
    a = [noise(10), structured("disc"), structured("checker")]
    b = [structured("stripes"), noise(11), noise(12)]
    ab, ba = net.distances(a, b), net.distances(b, a)
    np.testing.assert_allclose(ab, ba, rtol=1e-5, atol=1e-7)
    m = net.distance_matrix(a + b)
    np.testing.assert_allclose(m, m.T, atol=0)
    assert np.all(np.diag(m) == 0)
    np.testing.assert_allclose(m[np.arange(3), np.arange(3) + 3], ab, rtol=1e-5, atol=1e-7)


def test_agrees_with_the_lpips_package_forward(net: LpipsNet) -> None:
    """Reference: lpips.LPIPS.forward on each pair (it recomputes features per pair)."""
    images = [noise(20), structured("gradient"), structured("disc"), noise(21, size=96)]
    x = net.pixels(images)
    ia, ib = np.triu_indices(4, k=1)
    with torch.no_grad():
        reference = net.module(x[ia], x[ib]).flatten().numpy()
    np.testing.assert_allclose(net.distance_matrix(images)[ia, ib], reference, rtol=1e-5, atol=1e-7)
    assert net.pairwise_mean(images) == pytest.approx(float(reference.mean()), rel=1e-5)


def test_batch_split_invariance(net: LpipsNet) -> None:
    images = [noise(s) for s in range(5)]
    whole = net
    split = LpipsNet(whole.weights, device="cpu", image_batch=2, pair_batch=3)
    np.testing.assert_allclose(
        split.distance_matrix(images), whole.distance_matrix(images), rtol=1e-5, atol=1e-7
    )


def test_pixels_fixed_size_range_and_modes() -> None:
    images = [noise(1, size=40), noise(2, size=300).convert("L"), noise(3).convert("RGBA")]
    x = LpipsNet.pixels(images)
    assert x.shape == (3, 3, LPIPS_SIZE, LPIPS_SIZE) and x.dtype == torch.float32
    assert float(x.min()) >= -1.0 and float(x.max()) <= 1.0


def test_div_for_subject(net: LpipsNet) -> None:
    by_prompt = {3: [noise(s) for s in range(4)], 0: [structured("disc")] * 4, 7: [noise(30), noise(30)]}
    result = div_for_subject(net, by_prompt)
    per = result["per_prompt"]
    assert list(per) == [0, 3, 7]
    assert per[0] == pytest.approx(0.0, abs=1e-6) and per[7] == pytest.approx(0.0, abs=1e-6)
    assert per[3] == pytest.approx(div_for_prompt(net, by_prompt[3]), rel=1e-9)
    assert result["div"] == pytest.approx(np.mean(list(per.values())), rel=1e-12)


def test_grouped_matrices_equal_one_group_at_a_time(net: LpipsNet) -> None:
    groups = [[noise(40), noise(41), structured("disc")], [structured("checker"), noise(42)]]
    for grouped, group in zip(net.distance_matrices(groups), groups):
        np.testing.assert_allclose(grouped, net.distance_matrix(group), rtol=1e-5, atol=1e-7)


def test_div_rejects_too_few_images(net: LpipsNet) -> None:
    with pytest.raises(BenchError, match="at least 2 images"):
        div_for_prompt(net, [noise(0)])
    with pytest.raises(BenchError, match="at least one prompt"):
        div_for_subject(net, {})
    with pytest.raises(BenchError, match="for prompt 2"):
        div_for_subject(net, {1: [noise(0), noise(1)], 2: [noise(0)]})
    with pytest.raises(BenchError, match="aligned"):
        net.distances([noise(0)], [noise(1), noise(2)])


def test_metric_metadata() -> None:
    METRIC = get_metric("div")
    assert METRIC.name == "div" and METRIC.version == 1 and METRIC.higher_is_better is True
    assert "LPIPS" in str(METRIC.convention)


# -- weights ---------------------------------------------------------------------------------------


def test_smoke_weights_saved_once_and_loaded_by_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, net: LpipsNet
) -> None:
    monkeypatch.setenv("DREAMBENCH_CACHE", str(tmp_path))
    path = smoke_lpips_file(0)
    assert path == tmp_path / "weights" / "smoke" / "lpips-alex-seed0.safetensors"
    mtime = path.stat().st_mtime_ns
    loaded = LpipsNet.smoke(device="cpu")
    assert smoke_lpips_file(0) == path and path.stat().st_mtime_ns == mtime
    assert loaded.weights.backbone == path.resolve() and loaded.weights.linear == path.resolve()
    assert loaded.id.weights == "smoke:seed0" and loaded.calibrated is False
    # The module holds the file's tensors (the same loader as real weights; nothing left random).
    saved = load_state_dict_file(path)
    torch.testing.assert_close(loaded.module.net.slice3[1].weight, saved["features.6.weight"])
    torch.testing.assert_close(loaded.module.lin4.model[1].weight, saved["lin4.model.1.weight"])
    assert all(float(saved[f"lin{i}.model.1.weight"].min()) >= 0 for i in range(5))
    # Seeded: the same bytes (hence the same id) in another cache; another seed differs.
    assert path.read_bytes() == net.weights.backbone.read_bytes() and loaded.id == net.id
    assert smoke_lpips_file(1).read_bytes() != path.read_bytes()


def test_missing_real_backbone_is_refused_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(BACKBONE_ENV, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(BenchError) as err:
        LpipsNet.load(device="cpu")
    message = str(err.value)
    assert "\n" not in message and BACKBONE_FILE in message and "--preset smoke" in message
    assert BACKBONE_ENV in message and "IMAGENET1K_V1" in message
    assert not (tmp_path / "torch" / "hub" / "checkpoints" / BACKBONE_FILE).exists()  # nothing downloaded


def test_corrupt_hub_backbone_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(BACKBONE_ENV, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    bad = tmp_path / "torch" / "hub" / "checkpoints" / BACKBONE_FILE
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not alexnet")
    with pytest.raises(BenchError, match="corrupt"):
        resolve_lpips_weights(WeightsSource.pinned())


def test_foreign_backbone_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = tmp_path / "vgg.pth"
    torch.save({"features.28.weight": torch.zeros(1)}, file)
    monkeypatch.setenv(BACKBONE_ENV, str(file))
    with pytest.raises(BenchError, match="not a torchvision AlexNet"):
        LpipsNet.load(device="cpu")


def test_real_weights_path_maps_torchvision_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, net: LpipsNet
) -> None:
    """A stand-in torchvision AlexNet file (random trunk, real key names) through $DREAMBENCH_LPIPS_BACKBONE:
    every conv lands in its LPIPS slice, the shipped v0.1 linear layers are loaded, the classifier ignored."""
    import torchvision

    torch.manual_seed(5)
    state = {
        f"features.{k}": v for k, v in torchvision.models.alexnet(weights=None).features.state_dict().items()
    }
    state["classifier.1.weight"] = torch.zeros(2, 2)
    file = tmp_path / "alexnet.pth"
    torch.save(state, file)
    monkeypatch.setenv(BACKBONE_ENV, str(file))
    real = LpipsNet.load(device="cpu")
    assert real.calibrated is True and real.id.weights.startswith(f"file:{file.resolve()}+lpips:v0.1/alex")
    slices = {0: real.module.net.slice1[0], 3: real.module.net.slice2[1], 6: real.module.net.slice3[1]}
    slices |= {8: real.module.net.slice4[0], 10: real.module.net.slice5[0]}
    for index, conv in slices.items():
        torch.testing.assert_close(conv.weight, state[f"features.{index}.weight"], atol=0, rtol=0)
        torch.testing.assert_close(conv.bias, state[f"features.{index}.bias"], atol=0, rtol=0)
    shipped = torch.load(shipped_linear_weights(), map_location="cpu", weights_only=True)
    for i in range(5):
        torch.testing.assert_close(
            real.module.lins[i].model[1].weight, shipped[f"lin{i}.model.1.weight"], atol=0, rtol=0
        )
    # A different backbone file changes the id; distances are finite and non-negative.
    assert real.id.sha256 != net.id.sha256
    d = real.distances([noise(1), noise(2)], [noise(3), noise(2)])
    assert np.all(np.isfinite(d)) and d[0] > 0 and d[1] == pytest.approx(0.0, abs=1e-6)
