"""Subject fidelity against prompt following: CLIP-T (y) over DINO (x), one point per run.

The DreamBooth paper's trade-off in one picture: methods that copy the subject closely (high DINO)
tend to ignore the prompt (low CLIP-T), and the other way round. Conventions:

- One point per leaderboard entry at its overall figures (mean over subjects), labelled with the
  entry's label. Where the figure has a confidence interval (`ci` in results.json) the point gets
  an error bar spanning [low, high] on that axis (asymmetric: percentile intervals need not be
  centred).
- Uncalibrated runs (smoke embedders, random-weight or self-trained models) are hollow markers; the legend says so.
- A run without CLIP-T (the real-images ceiling: real photos have no prompt) is drawn as a
  vertical dashed line at its DINO, with its interval as a shaded band: the fidelity a perfect
  copy of the subject would reach. A run without DINO cannot be placed and is left out with a
  note.

matplotlib is imported inside `write_scatter` only (Agg canvas, no pyplot, no global backend
change), so importing this module stays cheap.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from dreambench.atomic import atomic_write_bytes
from dreambench.leaderboard.table import DAGGER, METRIC_TITLES, Figure, Leaderboard

X_METRIC = "dino"
Y_METRIC = "clip_t"
X_LABEL = f"{METRIC_TITLES[X_METRIC]} (subject fidelity) →"
Y_LABEL = f"{METRIC_TITLES[Y_METRIC]} (prompt following) →"
UNCALIBRATED_NOTE = f"hollow / {DAGGER}: uncalibrated (smoke embedders or models)"


@dataclass(frozen=True)
class ScatterPoint:
    """One run on the plot: its overall DINO and CLIP-T (CLIP-T None = a ceiling line)."""

    label: str
    x: Figure
    y: Figure
    calibrated: bool


@dataclass(frozen=True)
class ScatterPlot:
    """The files written and the notes to print next to the plot (runs left out, ceilings)."""

    png: Path
    svg: Path
    notes: tuple[str, ...]


def scatter_points(board: Leaderboard) -> tuple[list[ScatterPoint], list[str]]:
    """The runs that can be drawn (in leaderboard order) and a note for each that cannot."""
    points: list[ScatterPoint] = []
    notes: list[str] = []
    for entry in board.entries:
        x, y = entry.overall.figures[X_METRIC], entry.overall.figures[Y_METRIC]
        if x.value is None:
            notes.append(f"{entry.marked_label} is not plotted: it has no overall {METRIC_TITLES[X_METRIC]}")
            continue
        points.append(ScatterPoint(label=entry.marked_label, x=x, y=y, calibrated=entry.run.calibrated))
        if y.value is None:
            notes.append(
                f"{entry.marked_label} has no {METRIC_TITLES[Y_METRIC]} (no prompt): drawn as a vertical "
                f"line at its {METRIC_TITLES[X_METRIC]} {x.text()}"
            )
    return points, notes


def write_scatter(board: Leaderboard, stem: Path) -> ScatterPlot:
    """Draw the board's runs and save `<stem>.png` (150 dpi) and `<stem>.svg`.

    Both files are written byte-stable for the same board (no date in the metadata), so a rebuilt
    report does not churn.
    """
    from matplotlib.figure import Figure as MplFigure
    from matplotlib.lines import Line2D

    points, notes = scatter_points(board)
    fig = MplFigure(figsize=(7.0, 5.0), layout="constrained")
    ax = fig.add_subplot()
    colors = [f"C{i % 10}" for i in range(len(points))]
    drawn_points = 0
    for point, color in zip(points, colors, strict=True):
        if point.y.value is None:
            ax.axvline(point.x.value, color=color, linestyle="--", linewidth=1.2)
            if point.x.ci is not None:
                ax.axvspan(point.x.ci[0], point.x.ci[1], color=color, alpha=0.12, linewidth=0)
            ax.annotate(
                point.label,
                xy=(point.x.value, 1.0),
                xycoords=("data", "axes fraction"),
                xytext=(-3, -4),
                textcoords="offset points",
                rotation=90,
                ha="right",
                va="top",
                fontsize=8,
                color=color,
            )
            continue
        drawn_points += 1
        x, y = float(point.x.value), float(point.y.value)  # type: ignore[arg-type]
        xerr = None if point.x.ci is None else [[x - point.x.ci[0]], [point.x.ci[1] - x]]
        yerr = None if point.y.ci is None else [[y - point.y.ci[0]], [point.y.ci[1] - y]]
        if xerr is not None or yerr is not None:
            ax.errorbar(x, y, xerr=xerr, yerr=yerr, fmt="none", ecolor=color, elinewidth=1, capsize=3)
        ax.plot(
            [x],
            [y],
            marker="o",
            markersize=8,
            linestyle="none",
            color=color,
            markerfacecolor=color if point.calibrated else "none",
            markeredgewidth=1.5,
        )
        ax.annotate(point.label, xy=(x, y), xytext=(6, 5), textcoords="offset points", fontsize=8)
    if drawn_points == 0:
        ax.text(
            0.5,
            0.5,
            f"no run has both {METRIC_TITLES[X_METRIC]} and {METRIC_TITLES[Y_METRIC]}",
            transform=ax.transAxes,
            ha="center",
            va="center",
            color="0.4",
        )
    ax.set_xlabel(X_LABEL)
    ax.set_ylabel(Y_LABEL)
    ax.set_title("Subject fidelity vs prompt following (overall, mean over subjects)", fontsize=10)
    ax.grid(True, linewidth=0.5, alpha=0.4)
    ax.margins(0.15)
    legend = [
        Line2D([], [], marker="o", linestyle="none", color="0.2", label="calibrated"),
        Line2D(
            [], [], marker="o", linestyle="none", color="0.2", markerfacecolor="none", label=UNCALIBRATED_NOTE
        ),
        Line2D([], [], color="0.2", linestyle="--", label=f"no {METRIC_TITLES[Y_METRIC]}: ceiling line"),
        Line2D([], [], color="0.2", marker="|", linestyle="-", label="bars: confidence interval"),
    ]
    ax.legend(handles=legend, fontsize=7, loc="best", framealpha=0.85)

    png, svg = stem.with_suffix(".png"), stem.with_suffix(".svg")
    png_bytes, svg_bytes = io.BytesIO(), io.BytesIO()
    fig.savefig(png_bytes, format="png", dpi=150, metadata={"Software": None})
    fig.savefig(svg_bytes, format="svg", metadata={"Date": None, "Creator": None})
    atomic_write_bytes(png, png_bytes.getvalue())
    atomic_write_bytes(svg, svg_bytes.getvalue())
    return ScatterPlot(png=png, svg=svg, notes=tuple(notes))
