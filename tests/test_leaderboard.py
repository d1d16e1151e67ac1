"""leaderboard/ and `bench leaderboard`: load + validate results.json, comparability, tables, formats.

Runs are synthetic results.json files written by `write_run` (schema: docs/RESULTS.md).
"""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from statistics import mean
from typing import Any
from urllib.parse import unquote

import pytest
from results_factory import REAL_EMBEDDER, results_document

from dreambench.cli import main
from dreambench.errors import BenchError
from dreambench.leaderboard.compatibility import check_comparable, embedder_notes
from dreambench.leaderboard.csv_format import CSV_COLUMNS, render_csv
from dreambench.leaderboard.html import GALLERY_THUMBNAILS, render_html
from dreambench.leaderboard.json_format import render_json
from dreambench.leaderboard.markdown import render_markdown
from dreambench.leaderboard.results import RunResults, load_results
from dreambench.leaderboard.table import DAGGER, UNCALIBRATED_FOOTNOTE, Figure, build_leaderboard

REPO = Path(__file__).resolve().parents[1]

# (subject, kind, class noun): two live and two object subjects.
SUBJECTS: tuple[tuple[str, str, str], ...] = (
    ("backpack", "object", "backpack"),
    ("cat", "live", "cat"),
    ("clock", "object", "clock"),
    ("dog6", "live", "dog"),
)


def make_results(
    *,
    method: str = "dreambooth",
    preset: str = "default",
    calibrated: bool = True,
    base: float = 0.6,
    clip_t: bool = True,
    clip_t_text: str = "identifier removed",
    prompt_version: str = "1",
    prompt_sha256: str = "c0ffee",
    metric_version: int = 1,
    convention: str = "raw cosine in [-1, 1]",
    embedder: dict[str, str] | None = None,
    failed: dict[str, str] | None = None,
    ci: dict[str, list[float]] | None = None,
    config_hash: str = "3f2a9c1e",
) -> dict[str, Any]:
    """A results.json dict (schema_version 1). Subject i scores base + 0.01*i (DINO), base + 0.15 +
    0.01*i (CLIP-I), 0.25 + 0.01*i (CLIP-T, or null); overall figures are means over subjects."""
    failed = failed or {}
    subjects: dict[str, Any] = {}
    for i, (name, kind, noun) in enumerate(SUBJECTS):
        if name in failed:
            continue
        subjects[name] = {
            "kind": kind,
            "class_noun": noun,
            "identifier": "sks",
            "n_real": 5,
            "n_generated": 100,
            "dino": base + 0.01 * i,
            "clip_i": base + 0.15 + 0.01 * i,
            "clip_t": (0.25 + 0.01 * i) if clip_t else None,
        }

    return results_document(
        subjects,
        method=method,
        preset=preset,
        config_hash=config_hash,
        calibrated=calibrated,
        embedder=embedder,
        metric_version=metric_version,
        convention=convention,
        prompt_version=prompt_version,
        prompt_sha256=prompt_sha256,
        clip_t_text=clip_t_text,
        failures=failed,
        overall_ci=ci,
    )


def write_run(root: Path, results: dict[str, Any]) -> Path:
    """Write `results` as <root>/<method>-<preset>-<hash>/results.json; return the run directory."""
    run_dir = root / Path(results["run"]["run_dir"]).name
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "results.json").write_text(json.dumps(results, indent=2))
    return run_dir


CI_DINO = [0.591, 0.633]


@pytest.fixture
def runs_root(tmp_path: Path) -> Path:
    """runs/ with the real-images ceiling, an uncalibrated smoke run (one failed subject) and a
    calibrated run whose overall DINO has a confidence interval."""
    root = tmp_path / "runs"
    write_run(root, make_results(method="real-images", preset="default", base=0.774, clip_t=False))
    write_run(
        root,
        make_results(
            preset="smoke", calibrated=False, base=0.1, failed={"clock": "TrainingDiverged: loss is nan"}
        ),
    )
    write_run(root, make_results(preset="default", base=0.6, ci={"dino": CI_DINO}, config_hash="77aa00bb"))
    return root


@pytest.fixture
def runs(runs_root: Path) -> list[RunResults]:
    return [load_results(p) for p in sorted(runs_root.iterdir())]


def one_line_error(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


# --- results.py ---------------------------------------------------------------------------------


def test_load_results_accepts_dir_or_file_and_exposes_fields(runs_root: Path) -> None:
    run_dir = runs_root / "dreambooth-smoke-3f2a9c1e"
    a, b = load_results(run_dir), load_results(run_dir / "results.json")
    assert a == b and a.path == run_dir / "results.json" and a.run_dir == run_dir
    assert (a.method, a.preset, a.calibrated) == ("dreambooth", "smoke", False)
    assert a.prompt_set == {"name": "dreambench", "version": "1", "sha256": "c0ffee"}
    assert a.metric_versions == {"dino": 1, "clip_i": 1, "clip_t": 1}
    assert a.failures == {"clock": "TrainingDiverged: loss is nan"}
    assert set(a.subjects) == {"backpack", "cat", "dog6"}
    assert a.overall["n_subjects"] == 3
    assert a.overall_live is not None and a.overall_live["n_subjects"] == 2
    assert a.overall_object is not None and a.overall_object["n_subjects"] == 1
    assert a.uncalibrated_reasons and a.config_hash == "3f2a9c1e"


def _corrupt(mutate: Any) -> dict[str, Any]:
    results = make_results()
    mutate(results)
    return results


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{\n  "schema_version": 1,\n  "run": {,\n}', r"is not valid JSON \(line 3\)"),
        ("[1, 2]", "holds a JSON list"),
        (
            _corrupt(lambda r: r.update(schema_version=2)),
            "schema_version 2; this dreambench reads schema_version 1",
        ),
        (_corrupt(lambda r: r.pop("schema_version")), "has no schema_version"),
        (_corrupt(lambda r: r.pop("prompt_set")), "lacks the required key 'prompt_set'"),
        (_corrupt(lambda r: r["prompt_set"].pop("sha256")), "lacks the required key 'prompt_set.sha256'"),
        (_corrupt(lambda r: r["run"].pop("method")), "lacks the required key 'run.method'"),
        (_corrupt(lambda r: r["overall"].pop("dino")), "lacks the required key 'overall.dino'"),
        (
            _corrupt(lambda r: r["overall"].update(clip_i="high")),
            "overall.clip_i='high', expected a finite number",
        ),
        (_corrupt(lambda r: r["subjects"]["cat"].update(dino=True)), "subjects.cat.dino=True"),
        (
            _corrupt(lambda r: r["metrics"]["dino"].pop("version")),
            "lacks the required key 'metrics.dino.version'",
        ),
        (_corrupt(lambda r: r["metrics"].pop("clip_t")), "has overall.clip_t but no 'metrics.clip_t' entry"),
        (_corrupt(lambda r: r.update(calibrated="yes")), "calibrated='yes', expected true or false"),
        (_corrupt(lambda r: r["overall"].update(ci={"dino": [0.7, 0.6]})), r"overall.ci.dino=\[0.7, 0.6\]"),
    ],
)
def test_load_results_rejects_bad_files_in_one_line(tmp_path: Path, content: Any, expected: str) -> None:
    path = tmp_path / "run" / "results.json"
    path.parent.mkdir()
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(BenchError) as info:
        load_results(path.parent)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(path)), message
    assert re.search(expected, message), message
    assert "rerun `bench run` to rewrite it" in message


def test_load_results_missing(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match=r"nowhere does not exist"):
        load_results(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BenchError, match=r"empty/results.json does not exist"):
        load_results(tmp_path / "empty")


# --- compatibility.py ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"prompt_version": "2"}, "prompt_set.version"),
        ({"prompt_sha256": "deadbeef"}, "prompt_set.sha256"),
        ({"metric_version": 2}, "metrics.clip_i.version"),
        ({"convention": "cosine x 100"}, "metrics.clip_i.convention"),
        ({"embedder": {**REAL_EMBEDDER, "arch": "vit_small_patch8_224.dino"}}, "metrics.clip_i.embedder"),
        ({"clip_t_text": "identifier kept"}, "protocol.clip_t_text"),
    ],
)
def test_check_comparable_refuses_differing_definitions(
    tmp_path: Path, changes: dict[str, Any], field: str
) -> None:
    a = load_results(write_run(tmp_path, make_results()))
    b = load_results(write_run(tmp_path, make_results(preset="other", config_hash="99", **changes)))
    with pytest.raises(BenchError) as info:
        check_comparable([a, b])
    message = str(info.value)
    assert "\n" not in message
    assert str(a.run_dir) in message and str(b.run_dir) in message
    # Metrics are checked in name order; clip_i is the first one.
    assert f"{field} differs" in message


def test_clip_t_text_only_matters_where_both_runs_have_clip_t(tmp_path: Path) -> None:
    ceiling = make_results(
        method="real-images", clip_t=False, clip_t_text="identifier kept", config_hash="01"
    )
    runs = [load_results(write_run(tmp_path, ceiling)), load_results(write_run(tmp_path, make_results()))]
    check_comparable(runs)


def test_smoke_and_real_embedders_are_allowed_but_noted(runs: list[RunResults]) -> None:
    check_comparable(runs)
    notes = embedder_notes(runs)
    assert notes == [
        "embedders differ across these runs for clip_i, clip_t, dino; figures from smoke "
        "(uncalibrated) embedders are not comparable with the others"
    ]
    assert embedder_notes([r for r in runs if r.calibrated]) == []


# --- table.py -----------------------------------------------------------------------------------


def test_figure_text() -> None:
    assert Figure(0.61234).text() == "0.612"
    assert Figure(None).text() == "n/a"
    assert Figure(0.612, (0.591, 0.633)).text() == "0.612 ± 0.021"
    assert Figure(0.5, (0.5, 0.5)).text() == "0.500 ± 0.000"


def test_build_leaderboard_orders_by_dino_and_labels(runs: list[RunResults]) -> None:
    board = build_leaderboard(list(reversed(runs)))
    assert [e.run.method for e in board.entries] == ["real-images", "dreambooth", "dreambooth"]
    assert [e.run.preset for e in board.entries] == ["default", "default", "smoke"]
    assert [e.marked_label for e in board.entries] == [
        "real-images",
        "dreambooth (default)",
        f"dreambooth (smoke){DAGGER}",
    ]
    assert board.subjects == ("backpack", "cat", "clock", "dog6")
    assert board.subject_kinds["dog6"] == "live" and board.subject_kinds["clock"] == "object"
    assert board.footnotes == (UNCALIBRATED_FOOTNOTE,)

    overall = board.overall_table()
    assert overall.header[:7] == ("Method", "Kind", "Preset", "Metrics", "DINO", "CLIP-I", "CLIP-T")
    ceiling, calibrated, smoke = overall.rows
    # The smoke run failed on clock: every row's overall is its mean over the 3 common subjects,
    # without the runs' own intervals (tests/test_leaderboard_meaning.py covers the rest).
    assert ceiling[4] == f"{mean([0.774, 0.784, 0.804]):.3f}" and ceiling[6] == "n/a"
    assert calibrated[4] == f"{mean([0.6, 0.61, 0.63]):.3f}"
    assert smoke[0] == f"dreambooth{DAGGER}" and smoke[1] == "finetune" and smoke[7:10] == ("3", "no", "1")
    # Each row names its metric preset beside its run preset.
    assert (calibrated[2:4], smoke[2:4]) == (("default", "dreambooth"), ("smoke", "smoke"))

    dino = board.subject_tables()[0]
    clock = next(row for row in dino.rows if row[0] == "clock")
    assert clock == ("clock", "object", "0.794", "0.620", "failed")


def test_null_dino_sorts_last_and_empty_is_refused(tmp_path: Path) -> None:
    no_dino = make_results(method="text-only", config_hash="01")
    no_dino["overall"]["dino"] = None
    runs = [
        load_results(write_run(tmp_path, no_dino)),
        load_results(write_run(tmp_path, make_results(base=0.1))),
    ]
    assert [e.run.method for e in build_leaderboard(runs).entries] == ["dreambooth", "text-only"]
    with pytest.raises(BenchError, match="no runs"):
        build_leaderboard([])


def test_calibrated_only_board_has_no_dagger(runs: list[RunResults]) -> None:
    board = build_leaderboard([r for r in runs if r.calibrated])
    text = render_markdown(board) + render_html(board, link_base=Path.cwd()) + render_csv(board)
    assert DAGGER not in text and "uncalibrated:" not in text


# --- formats ------------------------------------------------------------------------------------


def test_markdown(runs: list[RunResults]) -> None:
    text = render_markdown(build_leaderboard(runs))
    lines = text.splitlines()
    assert (
        "| Method | Kind | Preset | Metrics | DINO | CLIP-I | CLIP-T | Subjects | Calibrated | Failures | Base model | Run | Dataset |"
        in lines
    )
    assert "|---|---|---|---|---:|---:|---:|---:|---|---:|---|---|---|" in lines
    smoke_row = next(
        line for line in lines if line.startswith(f"| dreambooth{DAGGER} | finetune | smoke | smoke |")
    )
    # The overall table names the dataset in its last column.
    assert smoke_row.endswith("| 3 | no | 1 | - | dreambooth-smoke-3f2a9c1e | dreambooth |")
    ceiling_row = next(line for line in lines if line.startswith("| real-images | finetune | default |"))
    assert "| n/a |" in ceiling_row
    assert "## Overall (mean over the 3 subjects common to all rows; intervals omitted)" in lines
    assert UNCALIBRATED_FOOTNOTE in lines
    assert "## Per subject: CLIP-T" in lines and "## Live vs object subjects" in text
    # Every table row has as many cells as its header.
    widths: list[int] = []  # cell counts of the current table's lines
    for line in [*lines, ""]:
        if line.startswith("|"):
            widths.append(len(line.strip("|").split("|")))
        elif widths:
            assert len(set(widths)) == 1, widths
            widths = []
    assert "## Cost (wall time of the stages that did work; peaks over the run)" in lines
    assert smoke_row.startswith("| dreambooth")
    cost_row = next(
        line for line in lines if line.startswith(f"| dreambooth{DAGGER} | smoke |") and "min" in line
    )
    assert cost_row == f"| dreambooth{DAGGER} | smoke | 4.5 min | 90.0 s | — | — | 2048 |"


def test_csv(runs: list[RunResults]) -> None:
    text = render_csv(build_leaderboard(runs))
    assert text.splitlines()[0] == ",".join(CSV_COLUMNS)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["scope"] for r in rows if r["method"] == "real-images"] == [
        "overall",
        "live",
        "object",
        "subject:backpack",
        "subject:cat",
        "subject:clock",
        "subject:dog6",
    ]
    by = {(r["preset"], r["method"], r["scope"]): r for r in rows}
    real = by[("default", "real-images", "subject:cat")]
    assert float(real["dino"]) == 0.774 + 0.01 and real["clip_t"] == ""  # unrounded, null is empty
    overall = by[("default", "dreambooth", "overall")]
    assert float(overall["dino"]) == pytest.approx(mean([0.6, 0.61, 0.63]))  # the 3 common subjects
    assert (overall["dino_ci_low"], overall["dino_ci_high"]) == ("", "")
    assert overall["calibrated"] == "true" and overall["n_subjects"] == "3" and overall["failures"] == "0"
    smoke = by[("smoke", "dreambooth", "overall")]
    assert (
        smoke["calibrated"] == "false" and smoke["failures"] == "1" and smoke["label"] == "dreambooth (smoke)"
    )
    failed = by[("smoke", "dreambooth", "subject:clock")]
    assert failed["dino"] == "" and failed["error"] == "TrainingDiverged: loss is nan"


def test_json(runs: list[RunResults]) -> None:
    data = json.loads(render_json(build_leaderboard(runs)))
    assert data["format"] == "dreambench-leaderboard" and data["format_version"] == 2
    assert data["overall_subjects"] == {"common_to_all_runs": True, "subjects": ["backpack", "cat", "dog6"]}
    assert data["prompt_set"]["version"] == "1" and data["metric_versions"] == {
        "dino": 1,
        "clip_i": 1,
        "clip_t": 1,
    }
    assert data["footnotes"] == [UNCALIBRATED_FOOTNOTE] and len(data["notes"]) == 2
    assert [(r["rank"], r["method"], r["preset"]) for r in data["runs"]] == [
        (1, "real-images", "default"),
        (2, "dreambooth", "default"),
        (3, "dreambooth", "smoke"),
    ]
    ceiling, calibrated, smoke = data["runs"]
    assert ceiling["overall"]["clip_t"] == {"value": None, "ci": None}
    assert calibrated["overall"]["dino"]["ci"] is None  # a mean over the common subjects
    assert calibrated["subjects"]["dog6"]["kind"] == "live"
    assert smoke["calibrated"] is False and smoke["failures"] == {"clock": "TrainingDiverged: loss is nan"}
    assert "clock" not in smoke["subjects"]
    # Stable: the same input gives the same bytes, whatever order the runs came in.
    assert render_json(build_leaderboard(runs)) == render_json(build_leaderboard(list(reversed(runs))))


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.images: list[str] = []
        self.details = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in {"src", "href"} and value is not None:
                self.urls.append(value)
                if tag == "img":
                    self.images.append(value)
        self.details += tag == "details"


def test_html_self_contained_with_relative_gallery(
    runs_root: Path, runs: list[RunResults], tmp_path: Path
) -> None:
    images = runs_root / "dreambooth-default-77aa00bb" / "subjects" / "dog6" / "images"
    images.mkdir(parents=True)
    for prompt in range(3):
        for sample in range(4):
            (images / f"{prompt}-{sample}.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (runs_root / "real-images-default-3f2a9c1e" / "subjects" / "cat" / "images").mkdir(parents=True)
    out_dir = tmp_path / "site" / "boards"
    out_dir.mkdir(parents=True)

    page = render_html(build_leaderboard(runs), link_base=out_dir)
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page
    assert not re.search(r"https?://", page) and "<script" not in page and "<link" not in page
    assert page.count("<table>") == 6  # overall, live/object, cost, 3 per-subject
    assert 'class="uncalibrated"' in page and UNCALIBRATED_FOOTNOTE in page
    assert f"{mean([0.6, 0.61, 0.63]):.3f}" in page and "n/a" in page

    links = _Links()
    links.feed(page)
    assert links.details == 1  # one subject of one run has images; the empty folder has none
    assert len(links.images) == GALLERY_THUMBNAILS
    assert "dog6 (8 of 12 images)" in page
    for url in links.urls:
        assert not url.startswith("/") and url.startswith("../"), url
        assert (out_dir / unquote(url)).resolve().is_file(), url
    # The first sample of each prompt comes first.
    assert [Path(unquote(u)).stem for u in links.images[:4]] == ["0-0", "1-0", "2-0", "0-1"]


def test_leaderboard_never_imports_torch() -> None:
    code = (
        "import sys, dreambench.leaderboard.results, dreambench.leaderboard.compatibility, dreambench.leaderboard.table, dreambench.leaderboard.markdown, "
        "dreambench.leaderboard.csv_format, dreambench.leaderboard.json_format, dreambench.leaderboard.html, dreambench.leaderboard.formats, dreambench.commands.leaderboard\n"
        "heavy = sorted(m for m in ('torch', 'numpy', 'torchvision', 'transformers', 'timm', 'open_clip', "
        "'diffusers', 'PIL') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=1800
    )
    assert done.returncode == 0, done.stderr


# --- CLI ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["md", "csv", "json", "html"])
def test_cli_formats_to_stdout(runs_root: Path, fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["leaderboard", str(runs_root), "--format", fmt]) == 0
    out = capsys.readouterr().out
    if fmt == "json":
        assert len(json.loads(out)["runs"]) == 3
    elif fmt == "csv":
        assert out.startswith("run,label,method") and "subject:dog6" in out
    elif fmt == "md":
        assert out.startswith("# dreambench leaderboard") and UNCALIBRATED_FOOTNOTE in out
    else:
        assert out.startswith("<!DOCTYPE html>") and "</html>" in out
    # The uncalibrated smoke run is marked: a dagger in md/html, calibrated=false in csv and json.
    if fmt in {"md", "html"}:
        assert f"dreambooth{DAGGER}" in out
    elif fmt == "csv":
        assert ",dreambooth (smoke),dreambooth,finetune,smoke,false,overall," in out


def test_cli_writes_file_with_format_from_suffix(
    runs_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dirs = sorted(str(p) for p in runs_root.iterdir())
    for suffix, start in (
        (".html", "<!DOCTYPE html>"),
        (".csv", "run,label"),
        (".json", "{"),
        (".md", "# dreambench"),
    ):
        out = tmp_path / "out" / f"board{suffix}"
        assert main(["leaderboard", *run_dirs, "-o", str(out)]) == 0
        assert out.read_text(encoding="utf-8").startswith(start)
        captured = capsys.readouterr()
        assert captured.out == "" and f"wrote {out}" in captured.err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "board.csv",
        "board.html",
        "board.json",
        "board.md",
    ]


def test_cli_same_run_twice_is_listed_once(runs_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = runs_root / "dreambooth-smoke-3f2a9c1e"
    assert main(["leaderboard", str(run_dir), str(run_dir / "results.json"), "--format", "json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["runs"]) == 1


def test_cli_terminal_markdown_draws_rich_tables(
    runs_root: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["leaderboard", str(runs_root)]) == 0
    out = capsys.readouterr().out
    assert "Overall (mean over the 3 subjects common to all rows" in out and f"dreambooth{DAGGER}" in out
    assert "|---" not in out  # not the Markdown text


@pytest.mark.parametrize(
    ("changes", "field"),
    [({"prompt_version": "2"}, "prompt_set.version"), ({"metric_version": 3}, "metrics.clip_i.version")],
)
def test_cli_refuses_incomparable_runs(
    runs_root: Path, tmp_path: Path, changes: dict[str, Any], field: str, capsys: pytest.CaptureFixture[str]
) -> None:
    write_run(runs_root, make_results(preset="v2", config_hash="0202", **changes))
    out = tmp_path / "board.html"
    assert main(["leaderboard", str(runs_root), "-o", str(out)]) == 2
    captured = capsys.readouterr()
    line = one_line_error(captured.err)
    assert (
        line.startswith("error: cannot compare")
        and f"{field} differs" in line
        and "dreambooth-v2-0202" in line
    )
    assert captured.out == "" and not out.exists() and list(tmp_path.glob(".board.html.*")) == []


def test_cli_corrupt_results(runs_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = runs_root / "dreambooth-smoke-3f2a9c1e" / "results.json"
    bad.write_text(bad.read_text()[:200])
    out = tmp_path / "board.md"
    assert main(["leaderboard", str(runs_root), "-o", str(out)]) == 2
    line = one_line_error(capsys.readouterr().err)
    assert f"{bad} is not valid JSON" in line and not out.exists()


def test_cli_missing_and_empty_dirs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["leaderboard", str(tmp_path / "missing")]) == 2
    assert "missing does not exist" in one_line_error(capsys.readouterr().err)
    (tmp_path / "empty" / "child").mkdir(parents=True)
    assert main(["leaderboard", str(tmp_path / "empty")]) == 2
    assert "holds no results.json" in one_line_error(capsys.readouterr().err)


def test_cli_output_is_a_directory(
    runs_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["leaderboard", str(runs_root), "-o", str(tmp_path)]) == 2
    assert "is a directory" in one_line_error(capsys.readouterr().err)


def test_cli_unknown_format(runs_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["leaderboard", str(runs_root), "--format", "xlsx"]) == 2
    line = one_line_error(capsys.readouterr().err)
    assert "unknown table format 'xlsx'" in line and "csv, html, json, md" in line
