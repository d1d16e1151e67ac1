"""One run request for the CLI and `dreambench.evaluate()`; methods as names, classes or instances;
table formats declared once (a format registered here flows through `bench leaderboard`)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from contract_methods import Recording

import dreambench
from dreambench.cli import main
from dreambench.errors import BenchError
from dreambench.leaderboard.formats import TABLE_FORMATS, TableFormat

ONE_PROMPT = {"name": "one", "version": "t1", "object": ["a {0} {1}"], "live": ["a {0} {1}"]}


@pytest.fixture()
def common(tmp_path: Path, dreambench_data: Path) -> dict[str, Any]:
    prompts = tmp_path / "one.json"
    prompts.write_text(json.dumps(ONE_PROMPT))
    return dict(
        subjects="dog", preset="smoke", data=dreambench_data, out=tmp_path / "runs", device="cpu",
        prompts=str(prompts), images_per_prompt=1,
    )


def _cli(common: dict[str, Any], *extra: str) -> int:
    args = ["run", "--method", "contract_methods:Recording", "--subjects", common["subjects"]]
    args += ["--preset", "smoke", "--data", str(common["data"]), "--out", str(common["out"])]
    args += ["--device", "cpu", "--prompts", common["prompts"], "--images-per-prompt", "1", "--quiet"]
    return main([*args, *extra])


def test_cli_name_class_and_instance_are_one_run(common: dict[str, Any]) -> None:
    assert _cli(common, "--method-args", "size=24") == 0
    (by_cli,) = [p for p in Path(common["out"]).iterdir() if p.is_dir()]
    by_name = dreambench.evaluate("contract_methods:Recording", method_args={"size": 24}, **common)
    by_class = dreambench.evaluate(Recording, method_args={"size": 24}, **common)
    # The same inputs are the same run, however the request was made.
    assert by_name["run"]["config_hash"] == by_class["run"]["config_hash"] == by_cli.name.rsplit("-", 1)[1]
    # An instance is run as it is: its whole config is recorded, under the method preset "instance".
    instance = Recording(replace(Recording.PRESETS["default"], size=24))
    by_instance = dreambench.evaluate(instance, **common)
    assert by_instance["run"]["method_preset"] == "instance"
    assert by_instance["run"]["method_config"] == by_name["run"]["method_config"]
    # Another setting of the instance is another run, never the same directory relabelled.
    other = dreambench.evaluate(Recording(replace(Recording.PRESETS["default"], size=20)), **common)
    assert other["run"]["config_hash"] != by_instance["run"]["config_hash"]


class _Unrecordable:
    """A method instance whose settings live in plain attributes: they cannot enter the identity."""

    name = "unrecordable"

    def __init__(self, colour: int) -> None:
        self.colour = colour

    def prepare(self, subject: Any, workdir: Path) -> None: ...

    def identifier(self, subject: Any) -> str:
        return ""

    def generate(self, subject: Any, workdir: Path, prompts: list[str], seeds: list[int]) -> list[Any]:
        return []

    def release(self) -> None: ...


@pytest.mark.parametrize(
    ("method", "options", "message"),
    [
        (_Unrecordable(3), {}, "keeps no `config` dataclass"),
        (Recording(Recording.PRESETS["default"]), {"method_args": {"size": 2}}, "does not apply to a method instance"),
        (Recording(Recording.PRESETS["default"]), {"executor": "ray"}, "runs in this process only"),
        ("contract_methods:Recording", {"identifier": "sks"}, "'identifier' does not apply when running a method"),
        (None, {"images_dir": ".", "seed": 3}, "'seed' does not apply when scoring images"),
        ("contract_methods:Recording", {"executor": "slurm"}, "unknown executor 'slurm'"),
    ],
)
def test_bad_requests_are_one_line_before_any_work(
    method: Any, options: dict[str, Any], message: str, common: dict[str, Any]
) -> None:
    with pytest.raises(BenchError, match=message):
        dreambench.evaluate(method, **{**common, **options})
    assert not Path(common["out"]).exists()


def render_tsv(board: Any) -> str:
    """A toy table format: the overall table, tab-separated."""
    (table, *_) = board.tables()
    return "\n".join("\t".join(row) for row in (table.header, *table.rows)) + "\n"


def test_a_registered_table_format_is_one_declaration(
    common: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    results = dreambench.evaluate("contract_methods:Recording", **common)
    monkeypatch.setitem(
        TABLE_FORMATS, "tsv", TableFormat("tsv", (".tsv",), "tab-separated", "test_run_request:render_tsv")
    )
    run_dir = results["run"]["run_dir"]
    assert main(["leaderboard", run_dir, "--format", "tsv"]) == 0
    stdout = capsys.readouterr().out
    header, row = stdout.splitlines()[:2]
    assert header.split("\t")[0] == "Method" and row.split("\t")[0].startswith("recording")
    out = Path(common["out"]) / "board.tsv"
    assert main(["leaderboard", run_dir, "-o", str(out)]) == 0
    assert out.read_text() == stdout
    capsys.readouterr()
    # An unknown format is one line naming the valid ones, the registered one among them.
    assert main(["leaderboard", run_dir, "--format", "xlsx"]) == 2
    assert "csv, html, json, md, tsv" in capsys.readouterr().err
