"""Resume verifies what it reuses, and results.json is a function of the files on disk now.

A finished run directory is damaged between invocations (as a disk, a user or a crash would) and
the rerun must repair it from what the damaged files derive from, never fail a subject, and end
with figures byte-identical to an undamaged run. Numbers come from seeded random-weight models
(the `smoke` preset): uncalibrated, compared only with each other.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from dreambench.cli import main
from dreambench.metrics.aggregate import summarize_overall, summarize_subject_images

TESTS = Path(__file__).resolve().parent
PROMPTS = {
    "name": "three",
    "version": "t1",
    "object": ["a {0} {1} in the snow", "a red {0} {1}", "a {0} {1} on the beach"],
    "live": ["a {0} {1} in the snow", "a {0} {1} wearing a red hat", "a {0} {1} on the beach"],
}


def _argv(out: Path, data: Path, prompts: Path, subjects: str, images_per_prompt: int = 1) -> list[str]:
    return [
        "run", "--method", "fault_methods:SlowNoise", "--subjects", subjects, "--prompts", str(prompts),
        "--images-per-prompt", str(images_per_prompt), "--preset", "smoke", "--data", str(data),
        "--out", str(out), "--quiet",
    ]  # fmt: skip


def figures(out: Path) -> str:
    """results.json less what differs between any two runs (wall times, stamp, run_dir path)."""
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    results = json.loads((run_dir / "results.json").read_text())
    for key in ("stamp", "cost"):
        results.pop(key)
    results["run"].pop("run_dir")
    for summary in results["subjects"].values():
        summary.pop("cost")
    return json.dumps(results, sort_keys=True)


@pytest.fixture(autouse=True)
def _test_methods_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(TESTS))


@pytest.fixture(scope="module")
def prompts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("prompts") / "three.json"
    path.write_text(json.dumps(PROMPTS))
    return path


@pytest.fixture(scope="module")
def finished(dreambench_data: Path, prompts: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run of dog and can (3 prompts x 1 image each), never modified by a test."""
    out = tmp_path_factory.mktemp("finished") / "runs"
    sys.path.insert(0, str(TESTS))
    try:
        assert main(_argv(out, dreambench_data, prompts, "dog,can")) == 0
    finally:
        sys.path.remove(str(TESTS))
    return out


def _copy(finished: Path, tmp_path: Path) -> tuple[Path, Path]:
    out = tmp_path / "runs"
    shutil.copytree(finished, out)
    (run_dir,) = out.iterdir()
    return out, run_dir


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_damaged_reused_images_are_rendered_again(
    finished: Path, dreambench_data: Path, prompts: Path, tmp_path: Path
) -> None:
    out, run_dir = _copy(finished, tmp_path)
    empty = run_dir / "subjects/dog/images/0-0.png"
    replaced = run_dir / "subjects/can/images/1-0.png"
    originals = {empty: _sha256(empty), replaced: _sha256(replaced)}
    empty.write_bytes(b"")  # a 0-byte PNG: exists, but is not the image its index records
    Image.new("RGB", (32, 32), (9, 9, 9)).save(replaced)  # a valid PNG, the wrong one
    assert main(_argv(out, dreambench_data, prompts, "dog,can")) == 0
    for path, data in originals.items():
        assert _sha256(path) == data, f"{path} was reused without checking its sha256"
    assert figures(out) == figures(finished)


DAMAGE: dict[str, Callable[[Path], None]] = {
    "truncated scores.jsonl": lambda run_dir: _truncate(run_dir / "subjects/dog/scores.jsonl"),
    "scores.jsonl without figures": lambda run_dir: (run_dir / "subjects/dog/scores.jsonl").write_text(
        '{"file": "0-0.png"}\n'
    ),
    "truncated cost.json": lambda run_dir: _truncate(run_dir / "subjects/dog/cost.json"),
    "cost.json of the wrong shape": lambda run_dir: (run_dir / "subjects/dog/cost.json").write_text(
        '[1, {"wall_s": "soon"}]'
    ),
    "cost.json with a bad record": lambda run_dir: (run_dir / "subjects/dog/cost.json").write_text(
        '{"render": {"wall_s": "soon"}, "score": 3}'
    ),
    "truncated images.jsonl": lambda run_dir: _truncate(run_dir / "subjects/dog/images.jsonl"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_derived_files_are_recomputed_never_a_failure(
    damage: str, finished: Path, dreambench_data: Path, prompts: Path, tmp_path: Path
) -> None:
    out, run_dir = _copy(finished, tmp_path)
    DAMAGE[damage](run_dir)
    assert main(_argv(out, dreambench_data, prompts, "dog,can")) == 0
    results = json.loads((run_dir / "results.json").read_text())
    assert results["failures"] == {} and sorted(results["subjects"]) == ["can", "dog"]
    assert figures(out) == figures(finished)
    (original,) = finished.iterdir()
    for name in ("scores.jsonl", "images.jsonl"):
        assert _sha256(run_dir / "subjects/dog" / name) == _sha256(original / "subjects/dog" / name), name


def test_results_list_only_the_subject_folders_on_disk(
    finished: Path, dreambench_data: Path, prompts: Path, tmp_path: Path
) -> None:
    out, run_dir = _copy(finished, tmp_path)
    shutil.rmtree(run_dir / "subjects/can")
    assert main(_argv(out, dreambench_data, prompts, "dog")) == 0
    results = json.loads((run_dir / "results.json").read_text())
    assert sorted(results["subjects"]) == ["dog"]
    assert results["overall"]["n_subjects"] == 1
    assert results["overall"]["dino"] == results["subjects"]["dog"]["dino"]


def test_figures_do_not_depend_on_order_or_history(
    dreambench_data: Path, prompts: Path, tmp_path: Path
) -> None:
    """The same finished subjects give byte-identical figures whether run in one order, the
    reverse order, or over two invocations (3 subjects: enough for float addition to differ)."""
    histories = {
        "dog,can,vase": ["dog,can,vase"],
        "vase,can,dog": ["vase,can,dog"],
        "vase, then can,dog": ["vase", "can,dog"],
    }
    seen = {}
    for name, invocations in histories.items():
        out = tmp_path / name.replace(",", "_").replace(" ", "")
        for subjects in invocations:
            assert main(_argv(out, dreambench_data, prompts, subjects, images_per_prompt=2)) == 0
        seen[name] = figures(out)
    assert len(set(seen.values())) == 1, "figures depend on the order subjects were run in"


def test_aggregation_is_exact_whatever_the_order() -> None:
    """0.1 + 0.2 + 0.3 rounds differently from 0.3 + 0.2 + 0.1: the means must not."""

    def subject(value: float) -> dict:
        pair_counts = {"dino": 3, "clip_i": 3, "clip_t": 1}
        return {"kind": "object", "dino": value, "clip_i": value, "clip_t": value, "pair_counts": pair_counts}

    forward = {"a": subject(0.1), "b": subject(0.2), "c": subject(0.3)}
    backward = dict(reversed(list(forward.items())))
    assert summarize_overall(forward) == summarize_overall(backward)
    assert summarize_overall(forward)["dino"] == 0.6 / 3

    cells = ((0, 0, 0.1), (0, 1, 0.2), (1, 0, 0.3))
    rows = [{"prompt_idx": p, "sample_idx": s, "dino": v, "clip_i": v, "clip_t": v} for p, s, v in cells]
    assert summarize_subject_images(rows, 4) == summarize_subject_images(rows[::-1], 4)


COST_DAMAGE: dict[str, Callable[[Path], None]] = {
    "truncated": lambda path: path.write_text('{"prepare": '),
    "a bad record": lambda path: path.write_text('{"render": {"wall_s": "soon"}, "score": 3}'),
    "deleted": lambda path: path.unlink(),
}


@pytest.mark.parametrize("damage", sorted(COST_DAMAGE))
def test_a_damaged_cost_json_is_repaired_and_its_lost_stages_marked_unknown(
    damage: str,
    finished: Path,
    dreambench_data: Path,
    prompts: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A stage's wall time cannot be recomputed without redoing the stage: the rerun keeps what is
    well-formed, marks the rest unknown (null) in cost.json, summary.json and results.json, and
    says so in one line; nothing else changes."""
    out, run_dir = _copy(finished, tmp_path)
    cost_path = run_dir / "subjects/dog/cost.json"
    can_cost = json.loads((run_dir / "subjects/can/cost.json").read_text())
    COST_DAMAGE[damage](cost_path)
    capsys.readouterr()
    assert main(_argv(out, dreambench_data, prompts, "dog,can")) == 0
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if "cost.json" in line]
    assert len(warnings) == 1 and str(cost_path) in warnings[0], err
    assert "prepare, render, score is unknown" in warnings[0]
    unknown = {"prepare": None, "render": None, "score": None}
    assert json.loads(cost_path.read_text()) == unknown
    assert json.loads((run_dir / "subjects/dog/summary.json").read_text())["cost"] == unknown
    results = json.loads((run_dir / "results.json").read_text())
    assert results["subjects"]["dog"]["cost"] == unknown
    assert results["subjects"]["can"]["cost"] == can_cost
    assert results["cost"]["unknown"] == {"dog": ["prepare", "render", "score"]}
    assert results["cost"]["total"]["wall_s"] == pytest.approx(sum(r["wall_s"] for r in can_cost.values()))
    assert figures(out) == figures(finished)

    # Once a stage does work again its cost is known again; the others stay unknown.
    (run_dir / "subjects/dog/scores.jsonl").unlink()
    assert main(_argv(out, dreambench_data, prompts, "dog,can")) == 0
    cost = json.loads(cost_path.read_text())
    assert cost["prepare"] is None and cost["render"] is None and cost["score"]["wall_s"] >= 0
    results = json.loads((run_dir / "results.json").read_text())
    assert results["cost"]["unknown"] == {"dog": ["prepare", "render"]}
