"""Published rows (leaderboard/reported.py, leaderboard/data/reported.json) through `bench
leaderboard --reported`: listed with their source in every format, beside the measured rows only
where the stated protocol matches, never read by `bench compare`."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from results_factory import results_document

from dreambench.cli import main
from dreambench.errors import BenchError
from dreambench.leaderboard.reported import default_path, load_reported

SUBJECTS = {
    "dog": {"kind": "live", "class_noun": "dog", "dino": 0.6, "clip_i": 0.8, "clip_t": 0.3},
    "can": {"kind": "object", "class_noun": "can", "dino": 0.5, "clip_i": 0.7, "clip_t": 0.28},
}


def _write(root: Path, name: str, **kwargs: Any) -> Path:
    doc = results_document(SUBJECTS, run_name=name, config_hash=name[-8:], **kwargs)
    doc["protocol"]["metric_protocol"] = "dreambooth"
    (root / name).mkdir(parents=True)
    (root / name / "results.json").write_text(json.dumps(doc))
    return root / name


def _board(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    capsys.readouterr()
    assert main(["leaderboard", *args]) == 0
    return capsys.readouterr().out


def test_the_shipped_file_has_the_dreambooth_table_1_rows_with_their_source() -> None:
    reported = load_reported()
    rows = {(r.method, r.base_model): r for r in reported.rows}
    assert rows[("dreambooth", "Imagen")].figures == {"dino": 0.696, "clip_i": 0.812, "clip_t": 0.306}
    assert rows[("dreambooth", "Stable Diffusion")].figures == {"dino": 0.668, "clip_i": 0.803, "clip_t": 0.305}
    assert rows[("textual-inversion", "Stable Diffusion")].figures == {"dino": 0.569, "clip_i": 0.780, "clip_t": 0.255}
    assert rows[("real images", None)].figures == {"dino": 0.774, "clip_i": 0.885, "clip_t": None}
    assert all(r.source["paper"] == "arXiv:2208.12242" and r.source["table"] == "Table 1" for r in reported.rows)
    assert any("Table 3" in note for note in reported.notes)


def test_reported_rows_in_every_format_and_beside_matching_runs_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    matching = _write(tmp_path, "dreambooth-default-aaaa0001")
    assert "reported" not in _board(capsys, str(matching))  # only on request

    text = _board(capsys, str(matching), "--reported", "--format", "md")
    assert "Reported, not re-measured" in text and "arXiv:2208.12242 Table 1, 'DreamBooth (Imagen)'" in text
    overall = text.split("## ")[1]  # the overall table: measured rows, then the matching reported ones
    assert "dreambooth (reported, not re-measured)" in overall and "0.696" in overall
    # The real-images row states no images per prompt; it matches too.
    assert "real images (reported, not re-measured)" in overall

    # Two images per prompt: the DreamBooth rows (4 stated) stay in their own section only.
    other = _write(tmp_path, "dreambooth-default-aaaa0002", images_per_prompt=2)
    text = _board(capsys, str(other), "--reported")
    assert "dreambooth (reported, not re-measured)" not in text.split("## ")[1]
    assert "no: images_per_prompt 4 (reported) vs 2" in text
    # Uncalibrated runs never stand beside published numbers.
    smoke = _write(tmp_path / "smoke", "smoke-run-aaaa0003", calibrated=False)
    assert "uncalibrated" in _board(capsys, str(smoke), "--reported")

    rows = list(csv.DictReader(io.StringIO(_board(capsys, str(matching), "--reported", "--format", "csv"))))
    reported = [r for r in rows if r["scope"] == "reported"]
    assert len(reported) == 4 and {r["dino"] for r in reported} >= {"0.696", "0.668", "0.569", "0.774"}
    assert all(r["source"].startswith("arXiv:2208.12242 Table 1") for r in reported)
    board = json.loads(_board(capsys, str(matching), "--reported", "--format", "json"))
    assert [r["beside_measured"] for r in board["reported"]] == [True] * 4
    assert board["reported"][1]["source"]["row"] == "DreamBooth (Imagen)"
    html = _board(capsys, str(matching), "--reported", "--format", "html")
    assert "Reported, not re-measured" in html and "DreamBooth (Stable Diffusion)" in html


def test_compare_never_takes_reported_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = _write(tmp_path, "dreambooth-default-aaaa0001")
    with pytest.raises(SystemExit):
        main(["compare", str(run), str(run), "--reported"])


def test_a_row_without_its_source_is_refused(tmp_path: Path) -> None:
    data = json.loads(default_path().read_text())
    del data["rows"][0]["source"]["table"]
    path = tmp_path / "reported.json"
    path.write_text(json.dumps(data))
    with pytest.raises(BenchError, match=r"rows\[0\]\.source needs paper, table"):
        load_reported(path)
