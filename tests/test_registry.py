"""Registry contract tests, parametrised over every method, and method-argument validation."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from dreambench.cli import main
from dreambench.errors import BenchError
from dreambench.hyperparams import config_fields, parse_method_args
from dreambench.method import METHOD_KINDS, Method, MethodHandle, RunContext
from dreambench.registry import METHODS, create_method, method_hyperparameters, resolve_method_class


@pytest.mark.parametrize("name", sorted(METHODS))
def test_method_contract(name: str) -> None:
    cls = resolve_method_class(name)
    assert cls.name == name
    assert dataclasses.is_dataclass(cls.Config)
    assert cls.PRESETS, f"{name} has no presets"
    for preset, config in cls.PRESETS.items():
        assert isinstance(config, cls.Config), f"{name} preset {preset} is not a {name}.Config"
    instance = create_method(name, next(iter(cls.PRESETS)), {}, RunContext("cpu"))
    assert isinstance(instance, MethodHandle) and isinstance(instance.method, Method)
    assert instance.name == name and instance.kind in METHOD_KINDS
    for field, hint in config_fields(cls.Config).items():
        assert hint is not None, f"{name}.{field} has no type hint"
    assert cls.__doc__, f"{name} has no docstring"


@pytest.mark.parametrize("name", sorted(METHODS))
def test_unknown_argument_lists_valid_ones(name: str) -> None:
    cls = resolve_method_class(name)
    with pytest.raises(BenchError) as info:
        create_method(name, next(iter(cls.PRESETS)), {"no_such_arg": "1"}, RunContext("cpu"))
    message = str(info.value)
    assert "no_such_arg" in message and "valid:" in message and "\n" not in message
    for field in config_fields(cls.Config):
        assert field in message


def test_unknown_method_suggests() -> None:
    with pytest.raises(BenchError, match="did you mean 'dreambooth'"):
        resolve_method_class("dreambooht")


def test_method_args_parsing(tmp_path: Path) -> None:
    assert parse_method_args("steps=400, lr=5e-6") == {"steps": "400", "lr": "5e-6"}
    (tmp_path / "a.json").write_text(json.dumps({"steps": 3}))
    assert parse_method_args(f"@{tmp_path / 'a.json'}") == {"steps": 3}
    (tmp_path / "a.yaml").write_text("steps: 5\nlr: 0.1\n")
    assert parse_method_args(str(tmp_path / "a.yaml")) == {"steps": 5, "lr": 0.1}
    with pytest.raises(BenchError, match="not key=value"):
        parse_method_args("steps")
    (tmp_path / "bad.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(BenchError, match="mapping"):
        parse_method_args(f"@{tmp_path / 'bad.yaml'}")


def test_methods_command_lists_everything(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["methods", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert set(METHODS) <= set(listing)
    for name in METHODS:
        cls = resolve_method_class(name)
        assert listing[name]["hyperparameters"].keys() == method_hyperparameters(cls, "paper").keys()


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (
            ["run", "--method", "dreambooht", "--subjects", "dog", "--preset", "smoke"],
            "did you mean 'dreambooth'",
        ),
        (
            ["run", "--method", "real-images", "--subjects", "dgo", "--preset", "smoke"],
            "unknown subject 'dgo'",
        ),
        (["run", "--method", "real-images", "--subjects", "dog", "--preset", "smoek"], "invalid choice"),
        (
            [
                "run",
                "--method",
                "real-images",
                "--subjects",
                "dog",
                "--preset",
                "smoke",
                "--method-args",
                "x=1",
            ],
            "unknown argument 'x'",
        ),
        (
            ["run", "--method", "nosuchpkg.mod:Cls", "--subjects", "dog", "--preset", "smoke"],
            "cannot import module 'nosuchpkg.mod'",
        ),
        (
            ["run", "--method", "plugins/nosuch.py:Cls", "--subjects", "dog", "--preset", "smoke"],
            "method 'plugins/nosuch.py:Cls': file 'plugins/nosuch.py' does not exist",
        ),
        (
            ["run", "--method", "real-images", "--subjects", "dog", "--prompts", "nope", "--preset", "smoke"],
            "unknown prompt set 'nope'",
        ),
        (["leaderboard", "runs-that-do-not-exist", "--format", "xml"], "unknown table format 'xml'"),
        (
            [
                "run",
                "--method",
                "dreambooth",
                "--subjects",
                "dog",
                "--preset",
                "smoke",
                "--method-preset",
                "paper",
            ],
            "or use --preset smoke",
        ),
    ],
)
def test_cli_errors_are_one_line_exit_2(
    argv: list[str], fragment: str, dreambench_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        raise SystemExit(
            main(
                [
                    *argv,
                    *(["--data", str(dreambench_data), "--out", str(tmp_path)] if argv[0] == "run" else []),
                ]
            )
        )
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert fragment in err, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not any(tmp_path.iterdir()), "nothing may be written on bad input"
