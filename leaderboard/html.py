"""Leaderboard as one self-contained HTML file: inline CSS, no scripts, no network fetches.

Besides the tables it renders a gallery: for every run directory that holds
`subjects/<name>/images/*.png`, a collapsible section per subject with up to GALLERY_THUMBNAILS
thumbnails. Images are linked, never embedded, by paths RELATIVE to the folder the HTML file is
written to, so the page keeps working when the output file and the runs are moved together.
"""

from __future__ import annotations

import os
import re
from html import escape
from pathlib import Path
from urllib.parse import quote

from dreambench.leaderboard.table import Entry, Leaderboard, TextTable

GALLERY_THUMBNAILS = 8

#: The stylesheet of every dreambench HTML page (leaderboard and report pages extend it).
BASE_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem; color: #1f2328; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.2rem; margin-top: 2rem; } h3 { font-size: 1rem; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; font-size: 0.9rem; }
th, td { border: 1px solid #d0d7de; padding: 0.3rem 0.6rem; }
th { background: #f6f8fa; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.uncalibrated td, th.uncalibrated { color: #8c959f; font-style: italic; }
p.footnote { font-size: 0.85rem; color: #57606a; }
details { margin: 0.3rem 0; } summary { cursor: pointer; }
div.thumbs { display: flex; flex-wrap: wrap; gap: 0.4rem; margin: 0.4rem 0 0.8rem; }
div.thumbs img { width: 128px; height: 128px; object-fit: cover; border: 1px solid #d0d7de; }
"""


def render_html(board: Leaderboard, link_base: Path) -> str:
    """The leaderboard as an HTML page; gallery links are relative to `link_base` (the folder the
    page will live in)."""
    body: list[str] = ["<h1>dreambench leaderboard</h1>", *tables_html(board)]
    body += _gallery_html(board, link_base)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        "<title>dreambench leaderboard</title>\n"
        f"<style>{BASE_CSS}</style>\n</head>\n<body>\n" + "\n".join(body) + "\n</body>\n</html>\n"
    )


def tables_html(board: Leaderboard, per_subject: bool = True) -> list[str]:
    """HTML lines of the board's tables (overall, live/object split and, if `per_subject`, one
    per-subject table per metric), then its footnotes and notes. Uncalibrated rows and columns
    carry class="uncalibrated"."""
    uncalibrated_rows = tuple(not e.run.calibrated for e in board.entries)
    overall, split, cost, *subject_tables = board.measured_tables()
    lines = _table_html(overall, row_marks=uncalibrated_rows)
    reported = board.reported_table()  # `--reported`: published rows, right after the measured ones
    lines += [] if reported is None else _table_html(reported)
    lines += _table_html(split, row_marks=uncalibrated_rows)
    lines += _table_html(cost, row_marks=uncalibrated_rows)
    groups = board.group_table()  # subject groups (pair datasets): each subject, mean and minimum
    lines += [] if groups is None else _table_html(groups)
    for table in subject_tables if per_subject else []:
        # Per-subject tables have a column per run (after Subject and Kind).
        lines += _table_html(table, column_marks=(False, False, *uncalibrated_rows))
    lines += [f'<p class="footnote">{escape(note)}</p>' for note in board.footnotes]
    if board.notes:
        lines += ["<ul>", *(f"<li>{escape(note)}</li>" for note in board.notes), "</ul>"]
    return lines


def gallery_images(entry: Entry, subject: str) -> tuple[list[Path], int]:
    """Up to GALLERY_THUMBNAILS images of one subject of a run, and how many the run has.

    Images are named `<prompt_idx>-<sample_idx>.png`; the first sample of each prompt comes first,
    so the thumbnails show as many different prompts as possible.
    """
    folder = entry.run.run_dir / "subjects" / subject / "images"
    if not folder.is_dir():
        return [], 0
    images = sorted(folder.glob("*.png"), key=_thumbnail_order)
    return images[:GALLERY_THUMBNAILS], len(images)


def _thumbnail_order(path: Path) -> tuple[int, int, str]:
    match = re.fullmatch(r"(\d+)-(\d+)", path.stem)
    if match is None:
        return (1 << 30, 0, path.name)
    return (int(match.group(2)), int(match.group(1)), path.name)


def _table_html(
    table: TextTable,
    row_marks: tuple[bool, ...] = (),
    column_marks: tuple[bool, ...] = (),
) -> list[str]:
    def mark(marks: tuple[bool, ...], i: int) -> str:
        return ' class="uncalibrated"' if i < len(marks) and marks[i] else ""

    lines = [f"<h2>{escape(table.title)}</h2>", "<table>", "<thead><tr>"]
    lines += [f"<th{mark(column_marks, i)}>{escape(cell)}</th>" for i, cell in enumerate(table.header)]
    lines += ["</tr></thead>", "<tbody>"]
    for r, row in enumerate(table.rows):
        cells = "".join(
            f'<td class="num">{escape(c)}</td>' if table.numeric[i] else f"<td>{escape(c)}</td>"
            for i, c in enumerate(row)
        )
        lines.append(f"<tr{mark(row_marks, r)}>{cells}</tr>")
    lines += ["</tbody>", "</table>"]
    return lines


def _gallery_html(board: Leaderboard, link_base: Path) -> list[str]:
    sections: list[str] = []
    base = link_base.resolve()
    for entry in board.entries:
        blocks: list[str] = []
        for subject in board.subjects:
            images, total = gallery_images(entry, subject)
            if not images:
                continue
            thumbs = "".join(
                f'<a href="{_relative_url(img, base)}"><img src="{_relative_url(img, base)}" '
                f'alt="{escape(subject)} {escape(img.stem)}" loading="lazy"></a>'
                for img in images
            )
            blocks.append(
                f"<details><summary>{escape(subject)} ({len(images)} of {total} images)</summary>"
                f'<div class="thumbs">{thumbs}</div></details>'
            )
        if blocks:
            sections += [f"<h3>{escape(entry.marked_label)}</h3>", *blocks]
    if not sections:
        return []
    return ["<h2>Gallery</h2>", *sections]


def _relative_url(path: Path, base: Path) -> str:
    relative = Path(os.path.relpath(path.resolve(), base)).as_posix()
    return escape(quote(relative, safe="/"))
