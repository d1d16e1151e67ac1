"""HTML report of finished runs: a self-contained folder to open in a browser or publish as is.

Layout of the report folder (every link is relative; no network fetch, no external script or
stylesheet, so the folder works offline, from file://, and after being moved):

    OUT/index.html                 one run: that run's page; several: the leaderboard page, which
                                   links a page per run
    OUT/runs/<run-dir-name>.html   several runs: one page per run
    OUT/assets/scatter.png|svg     CLIP-T against DINO (leaderboard/scatter.py)
    OUT/assets/thumbs/<sha>.jpg    thumbnails (THUMBNAIL_SIZE px), named by the source file's
                                   sha256, so reruns reuse them and shared images are made once

A run page shows the run's leaderboard rows (± CI half-width where results carry intervals), an
uncalibrated banner when results.json says `"calibrated": false`, then per subject: its figures,
its real images (the files results.json says it was scored against, from the copy of the dataset
it names, when that can be found), and a prompt x sample grid of generated
thumbnails, each captioned with its per-image DINO / CLIP-I / CLIP-T from scores.jsonl. Buttons
filter the subjects to live or object ones (a few lines of inline JS; without JS every subject
shows).

Confidence intervals are read where the leaderboard reads them (`ci` inside `overall`,
`overall_live`, `overall_object` and each subject entry) and also from a top-level
`ci: {"overall": {...}, "overall_live": ..., "subjects": {name: {...}}}` block (the shape of
`dreambench.metrics.statistics.intervals_for_results`); `with_intervals` folds the latter into the former.

Subject metadata (kind, class noun, category) comes from results.json, never from a dataset
loader; a dataset declaration (dataset/registry.py, by the name results.json records) only locates
the real image files. Heavy imports (Pillow for thumbnails, the dataset declarations, matplotlib)
happen inside functions: importing this module never pulls torch, numpy or PIL.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote

from dreambench.atomic import atomic_write_bytes, atomic_write_text, sweep_temp_entries
from dreambench.errors import BenchError
from dreambench.leaderboard.html import BASE_CSS, tables_html
from dreambench.leaderboard.results import METRICS, RunResults
from dreambench.leaderboard.scatter import ScatterPlot, write_scatter
from dreambench.leaderboard.table import METRIC_TITLES, Entry, Leaderboard, build_leaderboard

THUMBNAIL_SIZE = 128
ASSETS_DIR = "assets"
THUMBS_DIR = f"{ASSETS_DIR}/thumbs"
RUNS_DIR = "runs"
SCATTER_STEM = f"{ASSETS_DIR}/scatter"
UNCALIBRATED_BANNER = (
    "Uncalibrated: these figures were computed with random-weight or self-trained models (e.g. the smoke metric "
    "preset). They check that the pipeline runs; they are not comparable to published numbers."
)
_SHORT = {"dino": "D", "clip_i": "I", "clip_t": "T"}
_INTERVAL_SECTIONS = ("overall", "overall_live", "overall_object")

_REPORT_CSS = """
.banner { border: 2px solid #bf8700; background: #fff8c5; padding: 0.6rem 1rem; margin: 1rem 0;
  border-radius: 6px; }
.banner strong { color: #7d4e00; }
.meta { display: grid; grid-template-columns: max-content auto; gap: 0.15rem 1rem; font-size: 0.85rem; }
.meta dt { color: #57606a; } .meta dd { margin: 0; font-family: ui-monospace, monospace; }
.filters { margin: 1rem 0; } .filters button { margin-right: 0.3rem; padding: 0.2rem 0.8rem;
  border: 1px solid #d0d7de; background: #f6f8fa; border-radius: 4px; cursor: pointer; }
.filters button.active { background: #0969da; color: #fff; border-color: #0969da; }
body[data-filter="live"] [data-kind="object"], body[data-filter="object"] [data-kind="live"] {
  display: none; }
section.subject { border-top: 1px solid #d0d7de; margin-top: 1.5rem; }
section.subject h3 .kind { font-weight: normal; color: #57606a; font-size: 0.85rem; }
.thumbs figure, table.grid figure { margin: 0; display: inline-block; text-align: center; }
.thumbs { display: flex; flex-wrap: wrap; gap: 0.4rem; }
img.thumb { width: 128px; height: 128px; object-fit: contain; background: #f6f8fa;
  border: 1px solid #d0d7de; display: block; }
figcaption { font-size: 0.65rem; color: #57606a; font-variant-numeric: tabular-nums; white-space: nowrap; }
figure.scatter figcaption { font-size: 0.8rem; }
table.grid td { vertical-align: top; border: none; padding: 0.15rem; }
table.grid td.prompt { max-width: 16rem; font-size: 0.8rem; padding-right: 0.6rem; }
table.grid td.prompt .figs { color: #57606a; font-size: 0.75rem; font-variant-numeric: tabular-nums; }
p.note { color: #57606a; font-style: italic; }
span.flag { display: inline-block; font-size: 0.65rem; color: #fff; background: #cf222e; padding: 0 0.3rem;
  border-radius: 3px; }
figure.scatter img { max-width: 100%; width: 700px; height: auto; border: 1px solid #d0d7de; }
nav.subjects a { margin-right: 0.5rem; }
"""

_FILTER_JS = """
document.querySelectorAll('.filters button').forEach(function (button) {
  button.addEventListener('click', function () {
    document.body.setAttribute('data-filter', button.getAttribute('data-filter'));
    document.querySelectorAll('.filters button').forEach(function (other) {
      other.classList.toggle('active', other === button);
    });
  });
});
"""


# --- inputs ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GeneratedImage:
    """One generated image of a subject, from images.jsonl joined with scores.jsonl by file name."""

    path: Path
    prompt_idx: int
    sample_idx: int
    prompt: str
    sha256: str | None
    scores: dict[str, float | None] = field(default_factory=dict)
    # The declared `image_flag`s of optional metrics whose per-image value is non-zero ("copy").
    flags: tuple[str, ...] = ()


@dataclass(frozen=True)
class RealImages:
    """One dataset's real images per subject name, or a note saying why there are none.

    title: how pages name the dataset ("DreamBooth"); empty when the run names no dataset.
    """

    by_subject: dict[str, tuple[tuple[Path, str], ...]]
    note: str | None
    title: str = ""


def with_intervals(run: RunResults) -> RunResults:
    """The run with a top-level `ci` block folded into the sections the leaderboard reads.

    `ci.overall` goes to `overall.ci` (likewise `overall_live`, `overall_object`) and
    `ci.subjects.<name>` to `subjects.<name>.ci`; an interval already present in a section wins.
    The input is not modified.
    """
    block = run.raw.get("ci")
    if not isinstance(block, dict):
        return run
    raw = dict(run.raw)
    for key in _INTERVAL_SECTIONS:
        if isinstance(block.get(key), dict) and isinstance(raw.get(key), dict):
            raw[key] = {**raw[key], "ci": {**block[key], **(raw[key].get("ci") or {})}}
    per_subject = block.get("subjects")
    if isinstance(per_subject, dict):
        raw["subjects"] = {
            name: (
                {**entry, "ci": {**per_subject[name], **(entry.get("ci") or {})}}
                if isinstance(per_subject.get(name), dict)
                else entry
            )
            for name, entry in raw["subjects"].items()
        }
    return replace(run, raw=raw)


def load_real_images(dataset: str, data: Path | None) -> RealImages:
    """Real images of `dataset` (the name results.json records), located like every other command.

    With `data` given (--data) a dataset that cannot be found is an error. Without it the report
    looks where the dataset's declaration says (its environment variable, the cache), and when
    nothing is there, or the dataset is not installed here, the report shows a note instead.
    """
    from dreambench.dataset.registry import get_dataset

    try:
        declaration = get_dataset(dataset)
        subjects = declaration.subjects(data)
    except BenchError as exc:
        if data is not None:
            raise
        return RealImages({}, f"real images are not shown: {exc}", dataset)
    return RealImages(
        {s.name: tuple(zip(s.image_paths, s.image_sha256, strict=True)) for s in subjects},
        None,
        declaration.title,
    )


def dataset_name(run: RunResults) -> str | None:
    """The dataset a run's results.json names (None: custom subjects only)."""
    name = (run.raw.get("dataset") or {}).get("name")
    return str(name) if name else None


def _real_images_by_dataset(results: list[RunResults], data: Path | None) -> dict[str | None, RealImages]:
    names = sorted({n for n in map(dataset_name, results) if n is not None})
    if data is not None and len(names) > 1:
        raise BenchError(
            f"--data locates one dataset's copy but the runs use {len(names)} datasets ({', '.join(names)}); "
            "point each dataset's environment variable at its copy instead"
        )
    found: dict[str | None, RealImages] = {name: load_real_images(name, data) for name in names}
    found[None] = RealImages({}, "real images are not shown: the run's subjects are custom (--subject-dir)")
    return found


def _scored_against(
    real: tuple[tuple[Path, str], ...], entry: dict[str, Any]
) -> tuple[tuple[Path, str], ...]:
    """The real images a subject was scored against (results.json `images_scored_against`, by file
    name), in the dataset's order; all of them for results that predate that record."""
    names = entry.get("images_scored_against")
    if not isinstance(names, list):
        return real
    wanted = set(map(str, names))
    return tuple((path, sha) for path, sha in real if path.name in wanted)


def read_generated(run_dir: Path, subject: str) -> list[GeneratedImage]:
    """The subject's generated images in (prompt, sample) order, with their per-image scores.

    Rows come from `subjects/<subject>/images.jsonl`; where it is absent, from the
    `<prompt>-<sample>.png` files of the images folder (prompt text and scores then unknown).
    """
    folder = run_dir / "subjects" / subject
    scores = {row["file"]: row for row in _read_jsonl(folder / "scores.jsonl") if "file" in row}
    flags = _image_flags(folder / "optional_scores.json")
    rows = _read_jsonl(folder / "images.jsonl")
    if not rows and (folder / "images").is_dir():
        for path in (folder / "images").glob("*.png"):
            match = re.fullmatch(r"(\d+)-(\d+)", path.stem)
            if match is not None:
                rows.append({"file": path.name, "prompt_idx": int(match[1]), "sample_idx": int(match[2])})
    # A scored image the index no longer lists still gets its cell (a gap when its file is gone):
    # the gallery never silently shows fewer images than the run scored.
    listed = {str(row.get("file")) for row in rows}
    for name in sorted(set(scores) - listed):
        match = re.fullmatch(r"(\d+)-(\d+)\.png", name)
        if match is not None:
            rows.append({"file": name, "prompt_idx": int(match[1]), "sample_idx": int(match[2])})
    images = [
        GeneratedImage(
            path=folder / "images" / str(row["file"]),
            prompt_idx=int(row["prompt_idx"]),
            sample_idx=int(row["sample_idx"]),
            prompt=str(row.get("prompt") or ""),
            sha256=row.get("sha256"),
            scores={m: scores.get(str(row["file"]), {}).get(m) for m in METRICS},
            flags=flags.get(str(row["file"]), ()),
        )
        for row in rows
    ]
    return sorted(images, key=lambda im: (im.prompt_idx, im.sample_idx))


def _image_flags(path: Path) -> dict[str, tuple[str, ...]]:
    """File name -> the flags of the optional metrics that decide per image (a metric declaring
    `image_flag`, e.g. copy_rate's "copy") and gave that image a non-zero value."""
    from dreambench.metrics.metric_registry import find_metric

    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    flags: dict[str, tuple[str, ...]] = {}
    for name, entry in (stored.items() if isinstance(stored, dict) else ()):
        spec = find_metric(name)
        per_image = entry.get("per_image") if isinstance(entry, dict) else None
        if spec is None or not spec.image_flag or not isinstance(per_image, dict):
            continue
        for file, record in per_image.items():
            if isinstance(record, dict) and record.get("value"):
                flags[file] = (*flags.get(file, ()), spec.image_flag)
    return flags


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise BenchError(
                f"{path} line {number} is not valid JSON ({exc.msg}); rerun `bench run`"
            ) from None
    return rows


# --- thumbnails --------------------------------------------------------------------------------


class Thumbnails:
    """Makes THUMBNAIL_SIZE-px JPEG thumbnails under OUT/assets/thumbs, one per distinct source.

    A thumbnail is named by the source's sha256 (given, or hashed here) and made only when it does
    not exist yet. `url` returns its path relative to the report root, or None when the source
    is missing or cannot be read (the page then marks the gap instead of showing a broken image;
    `gaps` lists those sources, `gap` says which of the two).
    """

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.made = 0
        self._seen: dict[Path, str | None] = {}
        self.gaps: dict[Path, str] = {}

    def url(self, source: Path, sha256: str | None = None) -> str | None:
        if source in self._seen:
            return self._seen[source]
        self._seen[source] = result = self._make(source, sha256)
        if result is None:
            self.gaps[source] = "missing" if not source.is_file() else "unreadable"
        return result

    def gap(self, source: Path) -> str:
        """"missing" or "unreadable" for a source `url` could not show."""
        return self.gaps.get(source, "unreadable")

    def _make(self, source: Path, sha256: str | None) -> str | None:
        if not source.is_file():
            return None
        digest = sha256 or hashlib.sha256(source.read_bytes()).hexdigest()
        relative = f"{THUMBS_DIR}/{digest[:32]}.jpg"
        target = self.out_dir / relative
        if target.is_file():
            return relative
        data = _thumbnail_jpeg(source)
        if data is None:
            return None
        atomic_write_bytes(target, data)
        self.made += 1
        return relative


def _thumbnail_jpeg(source: Path) -> bytes | None:
    from PIL import Image, ImageOps, UnidentifiedImageError

    from dreambench.dataset.images import to_rgb

    try:
        with Image.open(source) as image:
            image.seek(0)  # frame 0 of multi-picture JPEGs, as the benchmark scores it
            # JPEG draft mode decodes at 1/2..1/8 scale: the DreamBooth photos are several MP.
            image.draft("RGB", (THUMBNAIL_SIZE * 2, THUMBNAIL_SIZE * 2))
            picture = to_rgb(ImageOps.exif_transpose(image))
    except (OSError, SyntaxError, ValueError, UnidentifiedImageError, Image.DecompressionBombError):
        return None
    picture.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=85, optimize=True)
    return buffer.getvalue()


# --- pages -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Report:
    """What `write_report` wrote: the entry page, the run pages, the plot, thumbnails made."""

    index: Path
    run_pages: tuple[Path, ...]
    scatter: ScatterPlot
    thumbnails_made: int
    gaps: tuple[Path, ...] = ()


def _warn_gaps(thumbs: Thumbnails) -> None:
    """One line on stderr naming the images the gallery could not show (count, first few)."""
    if not thumbs.gaps:
        return
    shown = ", ".join(f"{path} ({why})" for path, why in list(thumbs.gaps.items())[:3])
    more = f" and {len(thumbs.gaps) - 3} more" if len(thumbs.gaps) > 3 else ""
    sys.stderr.write(
        f"warning: {len(thumbs.gaps)} image(s) missing or unreadable, marked as gaps in the gallery: {shown}{more}\n"
    )


def write_report(results: list[RunResults], out_dir: Path, data: Path | None = None) -> Report:
    """Write the report folder for `results` (one run: a run report; several: a leaderboard).

    `data` locates the copy of the dataset the runs name, for real images (see `load_real_images`).
    Raises BenchError when the runs are not comparable (as the leaderboard does), or `data` is
    given but holds no copy of the dataset, or the runs name more than one dataset.
    """
    board = build_leaderboard([with_intervals(r) for r in results])
    real = _real_images_by_dataset(results, data)
    out_dir.mkdir(parents=True, exist_ok=True)
    # Temp files a killed report left, in the report's own folders only (out_dir may hold other things).
    for folder in (out_dir, out_dir / RUNS_DIR, out_dir / ASSETS_DIR, out_dir / THUMBS_DIR):
        sweep_temp_entries(folder, recursive=False)
    thumbs = Thumbnails(out_dir)
    scatter = write_scatter(board, out_dir / SCATTER_STEM)
    index = out_dir / "index.html"
    if len(board.entries) == 1:
        run = board.entries[0].run
        atomic_write_text(
            index, _run_page(board, board.entries[0], real[dataset_name(run)], thumbs, scatter, root="")
        )
        _warn_gaps(thumbs)
        return Report(index, (index,), scatter, thumbs.made, tuple(thumbs.gaps))
    names = _page_names(board.entries)
    pages = []
    for entry in board.entries:
        page = out_dir / RUNS_DIR / f"{names[entry.run]}.html"
        own = real[dataset_name(entry.run)]
        atomic_write_text(page, _run_page(board, entry, own, thumbs, scatter, root="../"))
        pages.append(page)
    atomic_write_text(index, _index_page(board, names, scatter))
    _warn_gaps(thumbs)
    return Report(index, tuple(pages), scatter, thumbs.made, tuple(thumbs.gaps))


def _page_names(entries: Iterable[Entry]) -> dict[RunResults, str]:
    """File-name-safe, unique page names from the run directory names."""
    names: dict[RunResults, str] = {}
    taken: set[str] = set()
    for entry in entries:
        base = re.sub(r"[^A-Za-z0-9._-]+", "_", entry.run.run_dir.resolve().name).strip("._") or "run"
        name, n = base, 2
        while name in taken:
            name, n = f"{base}-{n}", n + 1
        taken.add(name)
        names[entry.run] = name
    return names


def _page(title: str, body: list[str], script: str = "") -> str:
    scripts = f"<script>{script}</script>\n" if script else ""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n"
        f"<style>{BASE_CSS}{_REPORT_CSS}</style>\n</head>\n"
        '<body data-filter="all">\n' + "\n".join(body) + f"\n{scripts}</body>\n</html>\n"
    )


def _url(relative: str, root: str) -> str:
    return escape(root + quote(relative, safe="/"))


def _scatter_html(scatter: ScatterPlot, root: str) -> list[str]:
    png, svg = f"{SCATTER_STEM}.png", f"{SCATTER_STEM}.svg"
    lines = [
        "<h2>Subject fidelity vs prompt following</h2>",
        '<figure class="scatter">',
        f'<a href="{_url(svg, root)}"><img src="{_url(png, root)}" '
        'alt="CLIP-T against DINO, one point per run"></a>',
        f"<figcaption>CLIP-T (prompt following) against DINO (subject fidelity); "
        f'<a href="{_url(svg, root)}">SVG</a> · <a href="{_url(png, root)}">PNG</a></figcaption>',
        "</figure>",
    ]
    if scatter.notes:
        lines += ["<ul>", *(f"<li>{escape(n)}</li>" for n in scatter.notes), "</ul>"]
    return lines


def _banner(reasons: list[str], runs: list[str] | None = None) -> list[str]:
    lines = [
        '<div class="banner uncalibrated" id="uncalibrated-banner">',
        f"<strong>{escape(UNCALIBRATED_BANNER)}</strong>",
    ]
    if runs:
        lines.append(f"<p>Uncalibrated runs: {escape(', '.join(runs))}</p>")
    if reasons:
        lines += ["<ul>", *(f"<li>{escape(r)}</li>" for r in reasons), "</ul>"]
    return [*lines, "</div>"]


def _index_page(board: Leaderboard, names: dict[RunResults, str], scatter: ScatterPlot) -> str:
    body = ["<h1>dreambench leaderboard</h1>"]
    uncalibrated = [e.marked_label for e in board.entries if not e.run.calibrated]
    if uncalibrated:
        reasons = sorted({r for e in board.entries for r in e.run.uncalibrated_reasons})
        body += _banner(reasons, uncalibrated)
    body += ["<h2>Run reports</h2>", "<ul>"]
    for entry in board.entries:
        href = _url(f"{RUNS_DIR}/{names[entry.run]}.html", "")
        body.append(
            f'<li><a href="{href}">{escape(entry.marked_label)}</a> '
            f'<span class="kind">({escape(entry.run.run_dir.name)})</span></li>'
        )
    body.append("</ul>")
    body += _scatter_html(scatter, "")
    body += tables_html(board)
    return _page("dreambench leaderboard", body)


def _run_page(
    board: Leaderboard, entry: Entry, real: RealImages, thumbs: Thumbnails, scatter: ScatterPlot, root: str
) -> str:
    run = entry.run
    body: list[str] = []
    if root:
        body.append(f'<p><a href="{_url("index.html", root)}">← leaderboard</a></p>')
    body.append(f"<h1>{escape(entry.marked_label)} <small>{escape(run.run_dir.name)}</small></h1>")
    if not run.calibrated:
        body += _banner(run.uncalibrated_reasons)
    body += _meta_html(run)
    own = Leaderboard(entries=(entry,), subjects=board.subjects, subject_kinds=board.subject_kinds, notes=())
    body += tables_html(own, per_subject=False)
    if root == "":
        body += _scatter_html(scatter, root)

    subjects = [s for s in board.subjects if s in run.subjects or s in run.failures]
    kinds = {
        s: str((run.subjects.get(s) or {}).get("kind") or board.subject_kinds.get(s, "")) for s in subjects
    }
    body += [
        "<h2>Subjects</h2>",
        '<div class="filters" role="group" aria-label="filter subjects">Show: '
        '<button type="button" data-filter="all" class="active">all</button>'
        '<button type="button" data-filter="live">live</button>'
        '<button type="button" data-filter="object">object</button></div>',
    ]
    body += _subject_table(entry, subjects, kinds)
    if real.note:
        body.append(f'<p class="note">{escape(real.note)}</p>')
    for subject in subjects:
        body += _subject_html(entry, subject, kinds[subject], real, thumbs, root)
    return _page(f"dreambench report: {entry.label}", body, script=_FILTER_JS)


def _meta_html(run: RunResults) -> list[str]:
    raw = run.raw
    info = raw.get("run", {})
    stamp = raw.get("stamp") or {}
    git = stamp.get("git") or {}
    rows = {
        "method": run.method,
        "method preset": info.get("method_preset"),
        "run preset": run.preset,
        "metric preset": info.get("metric_preset"),
        "config hash": run.config_hash,
        "dataset": " ".join(
            str(v) for v in ((raw.get("dataset") or {}).get(k) for k in ("name", "repo", "commit")) if v
        ),
        "prompt set": f"{run.prompt_set['name']} v{run.prompt_set['version']}",
        **{f"protocol {k}": v for k, v in (raw.get("protocol") or {}).items()},
        "code": (git.get("commit") or "")[:12] + (" (dirty)" if git.get("dirty") else ""),
        "device": stamp.get("device"),
        "date": stamp.get("date"),
    }
    lines = ['<dl class="meta">']
    for key, value in rows.items():
        if value not in (None, ""):
            lines.append(f"<dt>{escape(key)}</dt><dd>{escape(str(value))}</dd>")
    return [*lines, "</dl>"]


def _anchor(subject: str) -> str:
    return "subject-" + re.sub(r"[^A-Za-z0-9_-]+", "_", subject)


def _subject_table(entry: Entry, subjects: list[str], kinds: dict[str, str]) -> list[str]:
    header = "".join(f"<th>{escape(METRIC_TITLES[m])}</th>" for m in METRICS)
    lines = ["<table>", f"<thead><tr><th>Subject</th><th>Kind</th>{header}</tr></thead>", "<tbody>"]
    for s in subjects:
        cells = "".join(f'<td class="num">{escape(entry.subject_text(s, m))}</td>' for m in METRICS)
        lines.append(
            f'<tr data-kind="{escape(kinds[s])}"><td><a href="#{_anchor(s)}">{escape(s)}</a></td>'
            f"<td>{escape(kinds[s])}</td>{cells}</tr>"
        )
    return [*lines, "</tbody>", "</table>"]


def _scores_text(values: dict[str, Any], names: dict[str, str] = _SHORT, sep: str = " · ") -> str:
    """E.g. "D 0.612 · I 0.801 · T 0.297" (metrics without a number are left out)."""
    return sep.join(f"{names[m]} {float(values[m]):.3f}" for m in METRICS if values.get(m) is not None)


def _subject_html(
    entry: Entry, subject: str, kind: str, real: RealImages, thumbs: Thumbnails, root: str
) -> list[str]:
    run = entry.run
    info = run.subjects.get(subject) or {}
    custom = ((run.raw.get("dataset") or {}).get("custom") or {}).get(subject) or {}
    noun = info.get("class_noun") or custom.get("class_noun")
    category = info.get("category")  # the dataset's own category, where it has one beyond the kind
    described = " · ".join(str(x) for x in (kind, category if category != kind else None, noun) if x)
    lines = [
        f'<section class="subject" id="{_anchor(subject)}" data-kind="{escape(kind)}">',
        f'<h3>{escape(subject)} <span class="kind">{escape(described)}</span></h3>',
    ]
    if subject in run.failures:
        lines.append(f'<p class="note">failed: {escape(run.failures[subject])}</p>')
    else:
        figures = " · ".join(f"{METRIC_TITLES[m]} {entry.subject_text(subject, m)}" for m in METRICS)
        lines.append(f"<p>{escape(figures)}</p>")

    lines.append("<h4>Real images</h4>")
    if subject in real.by_subject:
        figs = []
        for path, sha in _scored_against(real.by_subject[subject], info):
            figs.append(
                _thumb_html(
                    thumbs.url(path, sha),
                    root,
                    alt=f"{subject} real {path.name}",
                    title=path.name,
                    caption=path.name,
                    gap=thumbs.gap(path),
                )
            )
        lines.append(f'<div class="thumbs">{"".join(figs)}</div>')
    elif custom:
        lines.append(
            f'<p class="note">{escape(subject)} is a custom subject (--subject-dir): its photos are not kept with the run.</p>'
        )
    elif real.note is None:
        lines.append(
            f'<p class="note">{escape(subject)} is not a subject of the {escape(real.title)} dataset found.</p>'
        )
    else:
        lines.append('<p class="note">dataset not available (see the note above).</p>')

    images = read_generated(run.run_dir, subject)
    lines.append("<h4>Generated images</h4>")
    if not images:
        lines.append('<p class="note">no generated images in this run directory.</p>')
        return [*lines, "</section>"]
    per_prompt = info.get("per_prompt") or {}
    samples = sorted({im.sample_idx for im in images})
    by_prompt: dict[int, dict[int, GeneratedImage]] = {}
    for im in images:
        by_prompt.setdefault(im.prompt_idx, {})[im.sample_idx] = im
    lines.append('<table class="grid"><tbody>')
    for p, row in sorted(by_prompt.items()):
        prompt = next((im.prompt for im in row.values() if im.prompt), f"prompt {p}")
        prompt_figs = _scores_text(per_prompt.get(str(p)) or {})
        cells = [
            f'<td class="prompt">{p}. {escape(prompt)}'
            + (f'<br><span class="figs">{escape(prompt_figs)}</span>' if prompt_figs else "")
            + "</td>"
        ]
        for s in samples:
            im = row.get(s)
            if im is None:
                cells.append("<td></td>")
                continue
            caption = _scores_text(im.scores)
            title = "\n".join(
                x for x in (prompt, im.path.name, _scores_text(im.scores, METRIC_TITLES, "\n"), *im.flags) if x
            )
            cells.append(
                "<td>"
                + _thumb_html(
                    thumbs.url(im.path, im.sha256),
                    root,
                    alt=f"{subject} {im.path.stem}",
                    title=title,
                    caption=caption or im.path.name,
                    gap=thumbs.gap(im.path),
                )
                + "".join(f'<span class="flag">{escape(flag)}</span>' for flag in im.flags)
                + "</td>"
            )
        lines.append(f"<tr>{''.join(cells)}</tr>")
    lines.append("</tbody></table>")
    return [*lines, "</section>"]


def _thumb_html(
    relative: str | None, root: str, alt: str, title: str, caption: str, gap: str = "unreadable"
) -> str:
    if relative is None:
        return (
            f'<figure class="gap"><p class="note">{escape(gap)}: {escape(alt)}</p>'
            f"<figcaption>{escape(caption)}</figcaption></figure>"
        )
    return (
        f'<figure><img class="thumb" src="{_url(relative, root)}" alt="{escape(alt)}" '
        f'title="{escape(title)}" width="{THUMBNAIL_SIZE}" height="{THUMBNAIL_SIZE}">'
        f"<figcaption>{escape(caption)}</figcaption></figure>"
    )
