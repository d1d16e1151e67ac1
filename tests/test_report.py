"""`bench report`: self-contained HTML report folders from synthetic run directories.

The run directories are written here (results.json, a few small PNGs, images.jsonl, scores.jsonl),
so the tests check the report against known inputs: every page's links resolve inside the
folder, nothing points at the network, uncalibrated runs carry the banner, intervals show as
half-widths, per-image scores appear next to their thumbnails, and the scatter plot is written.
"""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
from html import escape
from html.parser import HTMLParser
from pathlib import Path
from statistics import mean
from typing import Any
from urllib.parse import unquote

import pytest
from PIL import Image
from results_factory import UNCALIBRATED_REASON, results_document

import dreambench.cli
from dreambench.errors import BenchError
from dreambench.leaderboard.report import (
    THUMBNAIL_SIZE,
    UNCALIBRATED_BANNER,
    read_generated,
    with_intervals,
    write_report,
)
from dreambench.leaderboard.results import load_results
from dreambench.leaderboard.scatter import scatter_points
from dreambench.leaderboard.table import build_leaderboard

REPO = Path(__file__).resolve().parents[1]

# Real DreamBooth subject names, so that real images can be shown from the dataset.
SUBJECTS: tuple[tuple[str, str, str], ...] = (("backpack", "object", "backpack"), ("dog6", "live", "dog"))
PROMPTS = ("a {} in the jungle", "a {} on the beach")
SAMPLES = 2


def _png(path: Path, color: tuple[int, int, int], size: int = 48) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), color).save(path, format="PNG")
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_run(
    root: Path,
    name: str,
    *,
    method: str = "dreambooth",
    calibrated: bool = True,
    base: float = 0.6,
    real_images: bool = False,
    ci_block: bool = False,
) -> Path:
    """A run directory. Generated runs: 2 subjects x 2 prompts x 2 samples; per-image DINO of
    (subject i, prompt p, sample s) is base + 0.01*i + 0.001*(2p+s), CLIP-I = DINO + 0.15, CLIP-T =
    0.25 + 0.01*i + 0.001*(2p+s). The real-images ceiling has one real_pairs line per subject and
    CLIP-T null."""
    run_dir = root / name
    subjects: dict[str, Any] = {}
    for i, (subject, kind, noun) in enumerate(SUBJECTS):
        folder = run_dir / "subjects" / subject
        folder.mkdir(parents=True, exist_ok=True)
        if real_images:
            dino = base + 0.01 * i
            (folder / "scores.jsonl").write_text(
                json.dumps({"kind": "real_pairs", "real_sha256": [], "dino": dino, "clip_i": dino + 0.1})
                + "\n"
            )
            subjects[subject] = {
                "kind": kind,
                "class_noun": noun,
                "n_real": 5,
                "dino": dino,
                "clip_i": dino + 0.1,
                "clip_t": None,
            }
            continue
        image_rows, score_rows = [], []
        per_prompt: dict[str, dict[str, float]] = {}
        for p, template in enumerate(PROMPTS):
            for s in range(SAMPLES):
                file = f"{p}-{s}.png"
                sha = _png(folder / "images" / file, (40 * i + 60, 80 * p + 40, 100 * s + 50))
                dino = base + 0.01 * i + 0.001 * (2 * p + s)
                clip_t = 0.25 + 0.01 * i + 0.001 * (2 * p + s)
                image_rows.append(
                    {
                        "file": file,
                        "prompt_idx": p,
                        "sample_idx": s,
                        "prompt": template.format(noun),
                        "identifier": "sks",
                        "seed": 1000 * p + s,
                        "sha256": sha,
                    }
                )
                score_rows.append(
                    {
                        "file": file,
                        "sha256": sha,
                        "prompt_idx": p,
                        "sample_idx": s,
                        "dino": dino,
                        "clip_i": dino + 0.15,
                        "clip_t": clip_t,
                    }
                )
            rows = score_rows[-SAMPLES:]
            per_prompt[str(p)] = {m: mean(r[m] for r in rows) for m in ("dino", "clip_i", "clip_t")}
        (folder / "images.jsonl").write_text("".join(json.dumps(r) + "\n" for r in image_rows))
        (folder / "scores.jsonl").write_text("".join(json.dumps(r) + "\n" for r in score_rows))
        subjects[subject] = {
            "kind": kind,
            "class_noun": noun,
            "identifier": "sks",
            "n_real": 5,
            "n_generated": len(image_rows),
            **{m: mean(r[m] for r in score_rows) for m in ("dino", "clip_i", "clip_t")},
            "per_prompt": per_prompt,
        }

    embedder = {
        "backend": "timm",
        "arch": "vit",
        "weights": "dino" if calibrated else "random-seed-0",
        "sha256": "aa" if calibrated else "bb",
    }
    results = results_document(
        subjects,
        method=method,
        method_kind="none" if real_images else "finetune",
        preset="default" if calibrated else "smoke",
        run_name=name,
        config_hash=name[-8:],
        calibrated=calibrated,
        embedder=embedder,
        images_per_prompt=SAMPLES,
    )
    if ci_block:
        overall = results["overall"]
        results["ci"] = {
            "overall": {
                m: [overall[m] - 0.02, overall[m] + 0.02]
                for m in ("dino", "clip_i", "clip_t")
                if overall[m] is not None
            },
            "subjects": {
                "dog6": {"dino": [subjects["dog6"]["dino"] - 0.05, subjects["dog6"]["dino"] + 0.05]}
            },
        }
    (run_dir / "results.json").write_text(json.dumps(results, indent=2))
    return run_dir


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    make_run(root, "dreambooth-default-1111aaaa", base=0.62, ci_block=True)
    make_run(
        root, "textual_inversion-smoke-2222bbbb", method="textual_inversion", calibrated=False, base=0.41
    )
    make_run(root, "real-images-default-3333cccc", method="real-images", base=0.77, real_images=True)
    return root


@pytest.fixture(scope="module")
def board_report(runs_root: Path, dreambench_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report") / "board"
    write_report([load_results(p) for p in sorted(runs_root.iterdir())], out, data=dreambench_data)
    return out


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.hrefs: list[str] = []
        self.ids: set[str] = set()
        self.scripts_with_src: list[str] = []
        self.stylesheets: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(str(a["id"]))
        if tag == "img":
            self.images.append(str(a.get("src")))
        if tag == "a" and a.get("href") is not None:
            self.hrefs.append(str(a["href"]))
        if tag == "script" and a.get("src"):
            self.scripts_with_src.append(str(a["src"]))
        if tag == "link":
            self.stylesheets.append(str(a.get("href")))


def _parse(page: Path) -> _Links:
    links = _Links()
    links.feed(page.read_text(encoding="utf-8"))
    return links


def _assert_self_contained(out: Path) -> list[Path]:
    pages = sorted(out.rglob("*.html"))
    assert pages
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert not re.search(r"https?://", text), f"{page} mentions a URL"
        links = _parse(page)
        assert not links.scripts_with_src and not links.stylesheets, page
        for url in (*links.images, *links.hrefs):
            if url.startswith("#"):
                assert url[1:] in links.ids, f"{page}: dangling anchor {url}"
                continue
            assert not url.startswith("/") and ":" not in url, f"{page}: non-relative link {url}"
            target = (page.parent / unquote(url)).resolve()
            assert target.is_file(), f"{page}: {url} does not resolve"
            assert out.resolve() in target.parents, f"{page}: {url} leaves the report folder"
    return pages


def test_leaderboard_report_is_self_contained(board_report: Path) -> None:
    pages = _assert_self_contained(board_report)
    assert board_report / "index.html" in pages
    assert len(list((board_report / "runs").glob("*.html"))) == 3
    index = _parse(board_report / "index.html")
    assert sorted(h for h in index.hrefs if h.startswith("runs/")) == [
        "runs/dreambooth-default-1111aaaa.html",
        "runs/real-images-default-3333cccc.html",
        "runs/textual_inversion-smoke-2222bbbb.html",
    ]
    assert "assets/scatter.png" in index.images


def test_scatter_png_and_svg_written(board_report: Path) -> None:
    png = (board_report / "assets" / "scatter.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert width > 500 and height > 300
    svg = ET.parse(board_report / "assets" / "scatter.svg").getroot()
    assert svg.tag.endswith("svg")
    text = (board_report / "assets" / "scatter.svg").read_text()
    # matplotlib writes text as glyph paths; the labels appear as comments/ids is not guaranteed,
    # so check the drawing has markers: one <path> per point at least.
    assert text.count("<path") > 10


def test_uncalibrated_banner_only_on_uncalibrated_pages(board_report: Path) -> None:
    index = (board_report / "index.html").read_text()
    assert 'id="uncalibrated-banner"' in index and "textual_inversion†" in index
    smoke = (board_report / "runs" / "textual_inversion-smoke-2222bbbb.html").read_text()
    assert 'id="uncalibrated-banner"' in smoke and UNCALIBRATED_BANNER in smoke
    assert escape(UNCALIBRATED_REASON) in smoke
    calibrated = (board_report / "runs" / "dreambooth-default-1111aaaa.html").read_text()
    assert 'id="uncalibrated-banner"' not in calibrated


def test_run_page_shows_intervals_scores_and_real_images(board_report: Path, dreambench_data: Path) -> None:
    page = board_report / "runs" / "dreambooth-default-1111aaaa.html"
    text = page.read_text()
    # Overall CI from the top-level ci block: ± half-width 0.020.
    assert "± 0.020" in text
    # Per-subject CI for dog6 DINO: ± 0.050.
    assert "± 0.050" in text
    # Each generated image captioned with its own scores (dog6 is subject 1: DINO 0.63 + 0.001*k).
    for k in range(4):
        dino = 0.62 + 0.01 + 0.001 * k
        assert f"D {dino:.3f} · I {dino + 0.15:.3f} · T {0.26 + 0.001 * k:.3f}" in text
    assert "a dog on the beach" in text
    links = _parse(page)
    # Real images: one thumbnail per real image of both subjects, plus 8 generated thumbnails.
    n_real = sum(len(list((dreambench_data / "dataset" / s).glob("*.jpg"))) for s, _, _ in SUBJECTS)
    assert len([u for u in links.images if "thumbs" in u]) == n_real + len(SUBJECTS) * len(PROMPTS) * SAMPLES
    # Subject sections are tagged for the live/object filter.
    assert 'data-kind="live"' in text and 'data-kind="object"' in text and "data-filter" in text
    for thumb in (board_report / "assets" / "thumbs").glob("*.jpg"):
        with Image.open(thumb) as im:
            assert max(im.size) <= THUMBNAIL_SIZE


def test_ceiling_is_a_line_not_a_point(runs_root: Path) -> None:
    board = build_leaderboard([with_intervals(load_results(p)) for p in sorted(runs_root.iterdir())])
    points, notes = scatter_points(board)
    by_label = {p.label: p for p in points}
    assert by_label["real-images"].y.value is None
    assert by_label["dreambooth"].x.ci == pytest.approx((0.6265 - 0.02, 0.6265 + 0.02))  # overall DINO 0.6265
    assert not by_label["textual_inversion†"].calibrated
    assert any("real-images" in n and "vertical line" in n for n in notes)


def test_single_run_report_and_rerun_reuses_thumbnails(
    runs_root: Path, tmp_path: Path, dreambench_data: Path
) -> None:
    run = load_results(runs_root / "textual_inversion-smoke-2222bbbb")
    first = write_report([run], tmp_path / "one", data=dreambench_data)
    assert first.index == tmp_path / "one" / "index.html" and first.thumbnails_made > 0
    assert not (tmp_path / "one" / "runs").exists()
    _assert_self_contained(tmp_path / "one")
    text = first.index.read_text()
    assert 'id="uncalibrated-banner"' in text and "assets/scatter.png" in text
    again = write_report([run], tmp_path / "one", data=dreambench_data)
    assert again.thumbnails_made == 0
    assert again.index.read_text() == text


def test_without_dataset_a_note_replaces_real_images(
    runs_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DREAMBENCH_DATA", str(tmp_path / "nowhere"))
    report = write_report([load_results(runs_root / "dreambooth-default-1111aaaa")], tmp_path / "out")
    text = report.index.read_text()
    assert "real images are not shown" in text
    _assert_self_contained(tmp_path / "out")


def test_explicit_missing_data_dir_is_an_error(runs_root: Path, tmp_path: Path) -> None:
    with pytest.raises(BenchError, match="not found"):
        write_report(
            [load_results(runs_root / "dreambooth-default-1111aaaa")],
            tmp_path / "out",
            data=tmp_path / "nope",
        )


def test_missing_and_unreadable_images_are_named_and_marked_as_gaps(
    runs_root: Path, tmp_path: Path, dreambench_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`bench report` never silently shows fewer images than the run scored: a deleted PNG, an
    unreadable one and a scored image its index lost are each a marked gap, named on stderr."""
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(runs_root / "dreambooth-default-1111aaaa", run_dir)
    images = run_dir / "subjects" / "dog6" / "images"
    (images / "0-1.png").unlink()
    (images / "1-0.png").write_bytes(b"not a png")
    index = run_dir / "subjects" / "backpack" / "images.jsonl"
    index.write_text("".join(line + "\n" for line in index.read_text().splitlines() if "1-1.png" not in line))
    (run_dir / "subjects" / "backpack" / "images" / "1-1.png").unlink()
    out = tmp_path / "out"
    capsys.readouterr()
    assert dreambench.cli.main(["report", str(run_dir), "-o", str(out), "--data", str(dreambench_data)]) == 0
    err = capsys.readouterr().err.splitlines()
    (warning,) = [line for line in err if line.startswith("warning:")]
    assert warning.startswith("warning: 3 image(s) missing or unreadable, marked as gaps in the gallery: ")
    for name, why in (("backpack/images/1-1.png", "missing"), ("dog6/images/0-1.png", "missing"),
                      ("dog6/images/1-0.png", "unreadable")):  # fmt: skip
        assert f"{name} ({why})" in warning, warning
    _assert_self_contained(out)
    text = (out / "index.html").read_text()
    assert text.count('<figure class="gap">') == 3
    assert "missing: dog6 0-1" in text and "unreadable: dog6 1-0" in text and "missing: backpack 1-1" in text

    capsys.readouterr()
    assert dreambench.cli.main(["report", str(runs_root / "dreambooth-default-1111aaaa"), "-o", str(tmp_path / "ok"),
                                "--data", str(dreambench_data)]) == 0  # fmt: skip
    assert "warning" not in capsys.readouterr().err


def test_read_generated_joins_scores_by_file(runs_root: Path) -> None:
    images = read_generated(runs_root / "dreambooth-default-1111aaaa", "backpack")
    assert [(im.prompt_idx, im.sample_idx) for im in images] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert images[3].scores["dino"] == pytest.approx(0.623)
    assert images[3].prompt == "a backpack on the beach"


def test_cli_report(
    runs_root: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    dreambench_data: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if "dreambench.commands.report" not in dreambench.cli.COMMAND_MODULES:
        monkeypatch.setattr(
            dreambench.cli, "COMMAND_MODULES", (*dreambench.cli.COMMAND_MODULES, "dreambench.commands.report")
        )
    out = tmp_path / "cli"
    assert dreambench.cli.main(["report", str(runs_root), "-o", str(out), "--data", str(dreambench_data)]) == 0
    assert "wrote" in capsys.readouterr().err
    assert len(list((out / "runs").glob("*.html"))) == 3
    (tmp_path / "file").write_text("x")
    assert dreambench.cli.main(["report", str(runs_root), "-o", str(tmp_path / "file")]) == 2
    assert "is a file" in capsys.readouterr().err


def test_report_modules_import_no_heavy_libraries() -> None:
    code = (
        "import sys, dreambench.leaderboard.report, dreambench.leaderboard.scatter, dreambench.leaderboard.html, dreambench.commands.report\n"
        "heavy = sorted(m for m in ('torch', 'numpy', 'PIL', 'matplotlib', 'transformers', 'timm', 'open_clip', "
        "'diffusers') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1800,  # only catches a hang: a loaded machine must not fail it
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 0, done.stderr
