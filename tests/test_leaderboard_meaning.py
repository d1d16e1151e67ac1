"""Tables that say what they mean: asymmetric intervals as [lo, hi]; overall figures compared over
the subjects every row scored (stated), or refused when there are none.

Runs are synthetic results.json files (tests/test_leaderboard.py's `make_results`).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from statistics import mean

import pytest
from test_leaderboard import make_results, one_line_error, write_run

from dreambench.cli import main
from dreambench.errors import BenchError
from dreambench.leaderboard.csv_format import render_csv
from dreambench.leaderboard.json_format import leaderboard_dict
from dreambench.leaderboard.markdown import render_markdown
from dreambench.leaderboard.results import load_results
from dreambench.leaderboard.table import Figure, build_leaderboard

# --- intervals ----------------------------------------------------------------------------------


def test_asymmetric_interval_is_printed_as_its_bounds() -> None:
    # The overall DINO interval of the issue: a half-width (0.386) would misstate both ends.
    assert Figure(0.383, (-0.061, 0.712)).text() == "0.383 [-0.061, 0.712]"
    assert Figure(0.615, (0.591, 0.633)).text() == "0.615 [0.591, 0.633]"
    # Equal reach on both sides at 3 decimals keeps the compact form.
    assert Figure(0.612, (0.591, 0.633)).text() == "0.612 ± 0.021"
    # A point estimate outside its own interval (possible with percentile bootstraps) is shown as is.
    assert Figure(0.70, (0.71, 0.75)).text() == "0.700 [0.710, 0.750]"


def test_asymmetric_interval_in_every_rendered_table(tmp_path: Path) -> None:
    results = make_results(base=0.3, ci={"dino": [-0.061, 0.712]})
    results["overall"]["dino"] = 0.383
    board = build_leaderboard([load_results(write_run(tmp_path, results))])
    text = render_markdown(board)
    assert "0.383 [-0.061, 0.712]" in text and "±" not in text
    table = board.overall_table()
    row = next(r for r in table.rows if r[0] == "dreambooth")
    assert row[table.header.index("DINO")] == "0.383 [-0.061, 0.712]"


# --- subjects common to all rows ----------------------------------------------------------------


def _two_runs(tmp_path: Path) -> list:
    """alpha scored all 4 subjects and does well on clock and dog6 only; beta scored backpack and cat."""
    alpha = make_results(method="alpha", base=0.4, config_hash="a1", ci={"dino": [0.40, 0.90]})
    for name in ("clock", "dog6"):
        alpha["subjects"][name]["dino"] = 0.9
    alpha["overall"]["dino"] = mean(s["dino"] for s in alpha["subjects"].values())  # 0.6525
    beta = make_results(
        method="beta", base=0.5, config_hash="b2", failed={"clock": "TrainingDiverged", "dog6": "OOM"}
    )
    return [load_results(write_run(tmp_path, r)) for r in (alpha, beta)]


def test_overall_is_compared_over_the_common_subjects(tmp_path: Path) -> None:
    board = build_leaderboard(_two_runs(tmp_path))
    assert board.common_subjects == ("backpack", "cat")
    table = board.overall_table()
    assert table.title == "Overall (mean over the 2 subjects common to all rows; intervals omitted)"
    rows = {row[0]: row for row in table.rows}
    # alpha's own overall (0.653, with its interval) would rank it first; over the common subjects
    # it scores 0.405 against beta's 0.505.
    dino, subjects = table.header.index("DINO"), table.header.index("Subjects")
    assert rows["alpha"][dino] == "0.405" and rows["beta"][dino] == "0.505"
    assert [e.run.method for e in board.entries] == ["beta", "alpha"]
    assert rows["alpha"][subjects] == rows["beta"][subjects] == "2"
    assert "0.653" not in render_markdown(board)
    note = next(n for n in board.notes if "different subjects" in n)
    assert "(backpack, cat)" in note and "left out: alpha: clock, dog6" in note
    # Live / object split: cat is the only common live subject, backpack the only object.
    split = {row[0]: row for row in board.split_table().rows}
    assert split["alpha"][2:4] == ("1", "0.410") and split["alpha"][6:8] == ("1", "0.400")
    assert "common to all rows" in board.split_table().title
    # The machine-readable formats say the same.
    data = leaderboard_dict(board)
    assert data["overall_subjects"] == {"common_to_all_runs": True, "subjects": ["backpack", "cat"]}
    alpha_json = next(r for r in data["runs"] if r["method"] == "alpha")
    assert alpha_json["overall"]["dino"] == {"value": pytest.approx(0.405), "ci": None}
    assert alpha_json["overall"]["n_subjects"] == 2
    rows_csv = list(csv.DictReader(io.StringIO(render_csv(board))))
    alpha_csv = next(r for r in rows_csv if r["method"] == "alpha" and r["scope"] == "overall")
    assert float(alpha_csv["dino"]) == pytest.approx(0.405) and alpha_csv["dino_ci_low"] == ""
    assert alpha_csv["n_subjects"] == "2"


def test_same_subjects_keep_each_runs_own_figures_and_intervals(tmp_path: Path) -> None:
    runs = [
        load_results(write_run(tmp_path, make_results(method="alpha", config_hash="a1", ci={"dino": [0.591, 0.633]}))),
        load_results(write_run(tmp_path, make_results(method="beta", base=0.5, config_hash="b2"))),
    ]
    board = build_leaderboard(runs)
    assert board.common_subjects is None
    assert board.overall_table().title == "Overall (mean over subjects)"
    assert not any("different subjects" in n for n in board.notes)
    alpha = next(e for e in board.entries if e.run.method == "alpha")
    assert alpha.overall.figures["dino"].ci == (0.591, 0.633)
    assert json.loads(json.dumps(leaderboard_dict(board)))["overall_subjects"]["common_to_all_runs"] is False


def test_runs_without_a_common_subject_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    left = make_results(method="alpha", config_hash="a1", failed={"clock": "x", "dog6": "x"})
    right = make_results(method="beta", config_hash="b2", failed={"backpack": "x", "cat": "x"})
    dirs = [write_run(tmp_path / "runs", r) for r in (left, right)]
    with pytest.raises(BenchError, match="share no scored subject"):
        build_leaderboard([load_results(d) for d in dirs])
    out = tmp_path / "board.md"
    assert main(["leaderboard", *map(str, dirs), "-o", str(out)]) == 2
    line = one_line_error(capsys.readouterr().err)
    assert "alpha: backpack, cat" in line and "beta: clock, dog6" in line and "--subjects" in line
    assert not out.exists()
