"""Table formats, declared once: `bench leaderboard --format NAME` and `-o FILE.<suffix>` dispatch here.

A format is one declaration: its name, the file suffixes that select it, a one-line description and
its renderer as a lazy ``"module:function"`` string. The renderer takes the arranged `Leaderboard`
and returns the text; a format whose output links to files (the HTML gallery) declares
``links_files=True`` and is also given ``link_base``, the folder its links are relative to.

    TABLE_FORMATS["tsv"] = TableFormat("tsv", (".tsv",), "tab-separated", "my_pkg.tsv:render_tsv")

Outside packages add formats through the entry-point group ``dreambench.table_formats`` (the entry
point's object is a `TableFormat`), or `register_table_format` from Python. Nothing is imported until
a format is used, so listing the formats never imports a renderer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dreambench.errors import BenchError, did_you_mean
from dreambench.lazy_registry import entry_point_objects, load_attr

if TYPE_CHECKING:
    from dreambench.leaderboard.table import Leaderboard

ENTRY_POINT_GROUP = "dreambench.table_formats"
DEFAULT_FORMAT = "md"


@dataclass(frozen=True)
class TableFormat:
    """One output format of the leaderboard (see the module docstring)."""

    name: str
    suffixes: tuple[str, ...]
    description: str
    renderer: str  # "module:function", function(board[, link_base=Path]) -> str
    links_files: bool = False

    def render(self, board: Leaderboard, link_base: Path) -> str:
        """The board as this format's text; ``link_base`` anchors links to files (when it has any)."""
        function = load_attr(self.renderer, f"table format {self.name!r}")
        text = function(board, link_base=link_base) if self.links_files else function(board)
        if not isinstance(text, str):
            raise BenchError(
                f"table format {self.name!r}: its renderer {self.renderer} returned "
                f"{type(text).__name__}, not str"
            )
        return text


TABLE_FORMATS: dict[str, TableFormat] = {
    f.name: f
    for f in (
        TableFormat("md", (".md", ".markdown"), "Markdown tables", "dreambench.leaderboard.markdown:render_markdown"),
        TableFormat("csv", (".csv",), "one row per (run, scope)", "dreambench.leaderboard.csv_format:render_csv"),
        TableFormat("json", (".json",), "machine-readable tables", "dreambench.leaderboard.json_format:render_json"),
        TableFormat(
            "html",
            (".html", ".htm"),
            "tables and image galleries in one page",
            "dreambench.leaderboard.html:render_html",
            links_files=True,
        ),
    )
}


def register_table_format(table_format: TableFormat) -> None:
    """Add (or replace) a format by its name; its suffixes select it for ``-o FILE``."""
    if not isinstance(table_format, TableFormat):
        raise BenchError(f"a table format must be a TableFormat, not {type(table_format).__name__}")
    TABLE_FORMATS[table_format.name] = table_format


def table_formats() -> dict[str, TableFormat]:
    """Every format by name: installed plugins' first, then the built-in and registered ones (which win)."""
    plugins = {
        f.name: f
        for f in entry_point_objects(ENTRY_POINT_GROUP, "table format")
        if isinstance(f, TableFormat)
    }
    return {**plugins, **TABLE_FORMATS}


def get_table_format(name: str) -> TableFormat:
    """The format called ``name`` (one-line did-you-mean error when there is none)."""
    formats = table_formats()
    if name not in formats:
        raise did_you_mean(name, formats, "table format")
    return formats[name]


def format_for_output(output: Path | None) -> TableFormat:
    """The format a file name's suffix selects (``board.csv`` -> csv); Markdown otherwise."""
    formats = table_formats()
    if output is not None:
        suffix = output.suffix.lower()
        for table_format in formats.values():
            if suffix in table_format.suffixes:
                return table_format
    return formats[DEFAULT_FORMAT]
