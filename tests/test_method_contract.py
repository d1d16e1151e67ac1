"""The Method contract (dreambench.method) through the CLI: required members checked on load,
run-level setup/teardown, release after a failing generate, canonical names, method kind and
source in results, consumed images, typed --method-args, plugin shadowing, and the encoder-style
example in docs/examples run through `bench run`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import contract_methods
import pytest
from method_files import write_method_file

from dreambench.cli import main
from dreambench.errors import BenchError
from dreambench.hyperparams import convert_argument, resolve_config
from dreambench.method import MethodHandle
from dreambench.registry import available_methods

REPO = Path(__file__).resolve().parents[1]
ONE_PROMPT = {"name": "one", "version": "t1", "object": ["a {0} {1}"], "live": ["a {0} {1}"]}


@pytest.fixture()
def prompts_file(tmp_path: Path) -> Path:
    path = tmp_path / "one.json"
    path.write_text(json.dumps(ONE_PROMPT))
    return path


@pytest.fixture(autouse=True)
def _fresh_log() -> None:
    contract_methods.CALLS.clear()


def _run(method: str, subjects: str, prompts: Path, data: Path, out: Path, *extra: str) -> int:
    return main(
        [
            "run", "--method", method, "--subjects", subjects, "--prompts", str(prompts),
            "--images-per-prompt", "1", "--preset", "smoke", "--data", str(data), "--out", str(out),
            "--device", "cpu", "--quiet", *extra,
        ]
    )


def _results(out: Path) -> dict:
    (path,) = out.glob("*/results.json")
    return json.loads(path.read_text())


def test_missing_required_member_is_refused_before_anything_is_written(
    prompts_file: Path, dreambench_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "runs"
    assert _run("contract_methods:NoGenerate", "dog", prompts_file, dreambench_data, out) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "lacks required member(s) generate" in err
    assert not out.exists()


def test_setup_once_release_after_failing_generate_teardown_at_the_end(
    prompts_file: Path, dreambench_data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "runs"
    code = _run(
        "contract_methods:Recording", "can,dog", prompts_file, dreambench_data, out,
        "--method-args", "fail_generate=can",
    )
    assert code == 1
    assert contract_methods.CALLS == [
        "setup:cpu",
        "prepare:can", "generate:can", "release",  # release() although generate raised
        "prepare:dog", "generate:dog", "release",
        "teardown",
    ]
    results = _results(out)
    assert "can" in results["failures"] and "dog" in results["subjects"]


def test_run_is_named_by_the_canonical_name_and_records_its_source(
    prompts_file: Path, dreambench_data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "runs"
    assert _run("contract_methods:Recording", "dog", prompts_file, dreambench_data, out) == 0
    (run_dir,) = out.iterdir()
    assert run_dir.name.startswith("recording-smoke-")
    run = _results(out)["run"]
    assert run["method"] == "recording" and run["method_kind"] == "finetune"
    assert run["method_source"]["class"] == "contract_methods:Recording"
    assert run["method_source"]["distribution"] is None  # a module on the path, not installed
    config = json.loads((run_dir / "config.json").read_text())
    assert config["method"] == "recording" and config["method_class"] == "contract_methods:Recording"


def test_builtin_method_source_names_the_distribution() -> None:
    from dreambench import __version__
    from dreambench.method import RunContext
    from dreambench.registry import create_method

    handle = create_method("real-images", "default", {}, RunContext("cpu"))
    source = handle.source()
    assert source["class"] == "dreambench.reference_impl.real_images:RealImages"
    assert source["distribution"] == {"name": "dreambench", "version": __version__}
    assert source["kind"] == "none"


def test_encoder_example_loads_once_and_serves_every_subject(
    prompts_file: Path, dreambench_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(REPO / "docs" / "examples"))
    import mean_embedding

    built: list[int] = []
    real_encoder = mean_embedding._encoder
    monkeypatch.setattr(mean_embedding, "_encoder", lambda seed: built.append(seed) or real_encoder(seed))
    torn_down: list[bool] = []
    real_teardown = mean_embedding.MeanEmbedding.teardown
    monkeypatch.setattr(
        mean_embedding.MeanEmbedding, "teardown", lambda self: torn_down.append(True) or real_teardown(self)
    )
    out = tmp_path / "runs"
    args = ("--method-args", "max_references=2")
    assert _run("mean_embedding:MeanEmbedding", "dog,can,cat", prompts_file, dreambench_data, out, *args) == 0
    assert built == [0] and torn_down == [True]  # one model for three subjects, closed once
    results = _results(out)
    assert results["run"]["method_kind"] == "encoder" and results["run"]["method"] == "mean-embedding"
    for name, subject in results["subjects"].items():
        scored = subject["images_scored_against"]
        assert subject["images_consumed"] == sorted(scored)[:2], name
        assert len(scored) == subject["n_real"]
        assert subject["identifier"] == ""


def test_method_args_from_json_are_converted_to_declared_types(tmp_path: Path) -> None:
    config_cls, presets = contract_methods.Recording.Config, contract_methods.Recording.PRESETS
    resolved = resolve_config(
        config_cls,
        presets,
        "default",
        {"size": 32.0, "rate": 1, "layers": [3, 4], "out": "x/y", "flag": "yes"},
        "recording",
    )
    assert (resolved.size, resolved.rate, resolved.layers, resolved.out, resolved.flag) == (
        32, 1.0, (3, 4), Path("x/y"), True
    )
    assert resolve_config(config_cls, presets, "default", {"out": None}, "recording").out is None
    assert resolve_config(config_cls, presets, "default", {"layers": "5;6"}, "recording").layers == (5, 6)


@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("size", 2.5, "expected an integer"),
        ("size", None, "expected an integer"),
        ("size", [1], "expected an integer"),
        ("size", True, "expected an integer"),
        ("rate", "nan", "expected a number"),
        ("rate", math.inf, "expected a number"),
        ("rate", "fast", "expected a number"),
        ("flag", "maybe", "expected true/false"),
        ("fail_generate", 3, "expected a string"),
        ("layers", 3, "expected a list"),
    ],
)
def test_method_args_of_the_wrong_type_are_one_line(key: str, value: object, expected: str) -> None:
    config_cls, presets = contract_methods.Recording.Config, contract_methods.Recording.PRESETS
    with pytest.raises(BenchError, match=expected) as info:
        resolve_config(config_cls, presets, "default", {key: value}, "recording")
    assert "\n" not in str(info.value) and key in str(info.value)


def test_json_method_args_file_with_a_float_count_exits_2(
    prompts_file: Path, dreambench_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args_file = tmp_path / "args.json"
    args_file.write_text(json.dumps({"size": 2.5}))
    out = tmp_path / "runs"
    code = _run(
        "contract_methods:Recording", "dog", prompts_file, dreambench_data, out, "--method-args", f"@{args_file}"
    )
    assert code == 2 and "size=2.5" in capsys.readouterr().err and not out.exists()


def test_literal_and_optional_conversion() -> None:
    from typing import Literal

    assert convert_argument("ddim", Literal["ddim", "pndm"], "s", "m") == "ddim"
    assert convert_argument("2", Literal[1, 2], "s", "m") == 2
    assert convert_argument("none", int | None, "s", "m") is None
    assert convert_argument("7", int | None, "s", "m") == 7
    with pytest.raises(BenchError, match="one of 'ddim', 'pndm'"):
        convert_argument("ddin", Literal["ddim", "pndm"], "s", "m")


def test_plugin_shadowed_by_a_builtin_is_named_in_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dist = tmp_path / "shadow_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: shadow-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[dreambench.methods]\ndreambooth = contract_methods:Recording\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.warns(UserWarning, match=r"'dreambooth' \(contract_methods:Recording\) is shadowed by the built-in"):
        methods = available_methods()
    assert methods["dreambooth"] == "dreambench.reference_impl.dreambooth:DreamBooth"


def test_handle_fills_optional_members_with_their_defaults() -> None:
    handle = MethodHandle(contract_methods.Recording(contract_methods.Recording.Config()))
    assert handle.calibrated is True and handle.scores_real_pairs is False
    assert handle.estimated_disk_bytes(None, 10) == 0  # type: ignore[arg-type]
    handle.check_ready()  # no hook: nothing to check
    assert handle.config_dict()["size"] == 16
    assert handle.version == "" and handle.identifier_scheme is None and handle.base_model is None


BAD_OUTPUT = """
if self.returns == "numpy":
    return [np.zeros((8, 8, 3), dtype=np.uint8) for _ in prompts]
if self.returns == "array":
    return np.zeros((len(prompts), 8, 8, 3), dtype=np.uint8)
if self.returns == "gray":
    return [Image.new("L", (8, 8)) for _ in prompts]
return [Image.new("RGB", (8, 8)) for _ in prompts[1:]]
"""
BAD_OUTPUT_INIT = """
def __init__(self, returns: str = "numpy"):
    self.returns = returns
"""


@pytest.mark.parametrize(
    "returns, fragment",
    [
        ("numpy", "generate() returned a numpy.ndarray at position 0; expected PIL.Image.Image"),
        ("array", "generate() returned ndarray; expected a list of PIL images"),
        ("gray", "generate() returned an image in mode 'L' at position 0; expected mode 'RGB'"),
        ("short", "generate() returned 1 images for 2 prompts"),
    ],
)
def test_generate_output_is_checked_where_it_leaves_the_method(
    returns: str, fragment: str, dreambench_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plugin = write_method_file(tmp_path / "bad_output.py", "BadOutput", "bad-output", BAD_OUTPUT, BAD_OUTPUT_INIT)
    prompts = tmp_path / "two.json"
    prompts.write_text(json.dumps({**ONE_PROMPT, "object": ["a {0} {1}", "{0} {1}"], "live": ["a {0} {1}", "{0} {1}"]}))
    out = tmp_path / "runs"
    code = _run(f"{plugin}:BadOutput", "can", prompts, dreambench_data, out, "--method-args", f"returns={returns}")
    assert code == 2  # every subject failed the same way: one line, exit 2
    err = capsys.readouterr().err
    assert f"method 'bad-output': {fragment}" in err and err.count("\n") == 1, err


@pytest.mark.parametrize("declared, missing", [("Config", "PRESETS"), ("PRESETS", "Config")])
def test_config_and_presets_come_together(
    declared: str, missing: str, prompts_file: Path, dreambench_data: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    member = (
        "@dataclass(frozen=True)\nclass Config:\n    size: int = 8\n"
        if declared == "Config"
        else "PRESETS = {'default': None}\n"
    )
    plugin = write_method_file(
        tmp_path / "half_config.py", "BadOutput", "bad-output", BAD_OUTPUT, member + BAD_OUTPUT_INIT
    )
    out = tmp_path / "runs"
    assert _run(f"{plugin}:BadOutput", "can", prompts_file, dreambench_data, out) == 2
    err = capsys.readouterr().err
    assert f"declares {declared} but not {missing}" in err and "BadOutput" in err and err.count("\n") == 1
    assert not out.exists()


DECLARING = """
version = "3"
base_model = "my-org/my-model"
identifier_scheme = "rare"
calibrated = False
"""


def test_declared_members_reach_results_and_the_leaderboard(
    prompts_file: Path, dreambench_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    generate = "return [Image.new('RGB', (8, 8), (9, 9, 9)) for _ in prompts]"
    plugin = write_method_file(tmp_path / "declaring.py", "Declaring", "declaring", generate, DECLARING, "zwx")
    out = tmp_path / "runs"
    assert _run(f"{plugin}:Declaring", "can", prompts_file, dreambench_data, out) == 0
    results = _results(out)
    run = results["run"]
    assert run["base_model"] == "my-org/my-model" and run["code"]["version"] == "3"
    # identifier_scheme "rare": the shipped candidate list is part of the identity.
    assert results["identifier_candidates"] and results["identifier_candidates"]["sha256"]
    assert any("base_model=my-org/my-model" in r for r in results["uncalibrated_reasons"])
    capsys.readouterr()
    assert main(["leaderboard", str(out), "--format", "csv"]) == 0
    assert "my-org/my-model" in capsys.readouterr().out


def test_builtins_declare_base_model_and_identifier_scheme() -> None:
    from dreambench.method import RunContext
    from dreambench.registry import create_method

    dreambooth = create_method("dreambooth", "smoke", {}, RunContext("cpu"))
    assert dreambooth.base_model == "tiny-trained" and dreambooth.identifier_scheme == "rare"
    assert create_method("dreambooth", "diffusers", {}).identifier_scheme is None  # "sks"
    assert create_method("textual-inversion", "smoke", {}).identifier_scheme is None
    assert create_method("ip-adapter", "smoke", {}).base_model == "tiny-trained"
    assert create_method("real-images", "default", {}).base_model is None


def test_leaderboard_reads_base_model_of_old_results_from_method_config(tmp_path: Path) -> None:
    from results_factory import results_document

    from dreambench.leaderboard.results import load_results

    old = results_document({"dog": {"kind": "live", "dino": 0.5, "clip_i": 0.7, "clip_t": 0.3}})
    assert "base_model" not in old["run"]  # as files written before run.base_model
    old["run"]["method_config"] = {"base_model": "runwayml/stable-diffusion-v1-5"}
    (tmp_path / "results.json").write_text(json.dumps(old))
    assert load_results(tmp_path).base_model == "runwayml/stable-diffusion-v1-5"
    old["run"]["base_model"] = None  # recorded: the method declares none
    (tmp_path / "results.json").write_text(json.dumps(old))
    assert load_results(tmp_path).base_model == "-"
