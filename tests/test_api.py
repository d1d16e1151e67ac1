"""The public Python API: `from dreambench import ...` and the one-call `dreambench.evaluate`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

import dreambench
from dreambench.errors import BenchError

ONE_PROMPT = {"name": "one", "version": "t1", "object": ["a {0} {1}"], "live": ["a {0} {1}"]}


def test_public_names_resolve_without_importing_torch() -> None:
    code = (
        "import sys, dreambench\n"
        "names = [n for n in dreambench.__all__ if n not in ('evaluate',)]\n"
        "for n in names: getattr(dreambench, n)\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
        "print(' '.join(sorted(dreambench.__all__)))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert set(result.stdout.split()) == {
        "BenchError", "Method", "PromptSet", "Subject", "__version__", "evaluate",
        "load_prompt_set", "load_results", "load_subjects",
    }
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        dreambench.Nope  # noqa: B018


@pytest.mark.slow
def test_evaluate_runs_a_method_and_scores_images(tmp_path: Path, dreambench_data: Path) -> None:
    prompts = tmp_path / "one.json"
    prompts.write_text(json.dumps(ONE_PROMPT))
    common = dict(
        subjects="dog", preset="smoke", data=dreambench_data, out=tmp_path / "runs", device="cpu",
        prompts=str(prompts), images_per_prompt=1,
    )
    results = dreambench.evaluate("contract_methods:Recording", method_args={"size": 24}, **common)
    assert results["run"]["method"] == "recording" and results["run"]["method_config"]["size"] == 24
    assert results["subjects"]["dog"]["n_generated"] == 1
    assert dreambench.load_results(Path(results["run"]["run_dir"])).raw == results

    images = tmp_path / "mine" / "dog"
    images.mkdir(parents=True)
    Image.new("RGB", (32, 32), (10, 200, 30)).save(images / "0-0.png")
    scored = dreambench.evaluate(images_dir=tmp_path / "mine", **common)
    assert scored["run"]["method"] == "external:mine" and scored["run"]["method_kind"] == "external"


def test_evaluate_refuses_bad_calls(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match="exactly one of"):
        dreambench.evaluate()
    with pytest.raises(BenchError, match="unknown option 'imagez_per_prompt'"):
        dreambench.evaluate("dreambooth", imagez_per_prompt=2, out=tmp_path)
