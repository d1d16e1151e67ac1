"""Leaderboard as GitHub-flavoured Markdown: one section per table, footnotes and notes below."""

from __future__ import annotations

from dreambench.leaderboard.table import Leaderboard, TextTable


def render_markdown(board: Leaderboard) -> str:
    """The whole leaderboard as Markdown text (ends with a newline)."""
    parts = ["# dreambench leaderboard", ""]
    for table in board.tables():
        parts += [f"## {table.title}", "", *markdown_table(table), ""]
    for footnote in board.footnotes:
        parts += [footnote, ""]
    if board.notes:
        parts += ["Notes:", "", *(f"- {note}" for note in board.notes), ""]
    return "\n".join(parts).rstrip("\n") + "\n"


def markdown_table(table: TextTable) -> list[str]:
    """The lines of one GitHub table; numeric columns are right-aligned."""
    lines = [_row(table.header), "|" + "|".join("---:" if num else "---" for num in table.numeric) + "|"]
    lines += [_row(row) for row in table.rows]
    return lines


def _row(cells: tuple[str, ...]) -> str:
    # A pipe inside a cell (a custom method or preset name) would split the column.
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"
