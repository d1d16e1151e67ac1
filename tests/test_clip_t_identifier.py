"""`--clip-t-keep-identifier` (run and eval): the CLIP-T text keeps the subject identifier; the
choice is recorded in results.json and is part of the run's identity (its own run directory)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from dreambench.cli import build_parser, main

ONE_PROMPT = {"name": "one", "version": "o1", "object": ["a {0} {1} in the snow"], "live": ["a {0} {1} in the snow"]}


def test_run_and_eval_accept_the_flag() -> None:
    parser = build_parser()
    assert parser.parse_args(["run", "--method", "dreambooth", "--clip-t-keep-identifier"]).clip_t_keep_identifier
    assert not parser.parse_args(["run", "--method", "dreambooth"]).clip_t_keep_identifier
    assert parser.parse_args(["eval", "imgs", "--clip-t-keep-identifier"]).clip_t_keep_identifier


def test_keeping_the_identifier_is_recorded_and_changes_clip_t_only(
    dreambench_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prompts = tmp_path / "one.json"
    prompts.write_text(json.dumps(ONE_PROMPT))
    images = tmp_path / "mine" / "dog"
    images.mkdir(parents=True)
    Image.new("RGB", (48, 48), (200, 120, 40)).save(images / "0-0.png")
    out = tmp_path / "runs"

    def evaluate(*flags: str) -> dict:
        args = ["eval", str(images.parent), "--identifier", "sks", "--prompts", str(prompts)]
        args += ["--images-per-prompt", "1", "--preset", "smoke", "--data", str(dreambench_data)]
        assert main([*args, "--out", str(out), "--json", *flags]) == 0
        return json.loads(capsys.readouterr().out)

    removed, kept = evaluate(), evaluate("--clip-t-keep-identifier")
    assert removed["protocol"]["clip_t_text"] == "identifier removed"
    assert kept["protocol"]["clip_t_text"] == "identifier kept"
    # Its own identity: another run directory, never a relabelled one.
    assert removed["run"]["config_hash"] != kept["run"]["config_hash"]
    configs = {json.loads((p / "config.json").read_text())["clip_t_keep_identifier"] for p in out.iterdir()}
    assert configs == {False, True}
    dog_removed, dog_kept = removed["subjects"]["dog"], kept["subjects"]["dog"]
    assert dog_kept["clip_t"] != dog_removed["clip_t"]
    assert (dog_kept["dino"], dog_kept["clip_i"]) == (dog_removed["dino"], dog_removed["clip_i"])
