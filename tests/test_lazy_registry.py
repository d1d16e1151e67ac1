"""dreambench.lazy_registry: the one resolver of lazy "module:Attr" / "file.py:Attr" strings."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from dreambench.errors import BenchError
from dreambench.executors import executor_class
from dreambench.lazy_registry import entry_point_objects, entry_point_targets, load_attr, resolve, target_of


def test_module_target_and_dotted_attribute() -> None:
    assert load_attr("pathlib:Path", "thing") is Path
    assert load_attr("pathlib:Path.cwd", "thing") == Path.cwd


@pytest.mark.parametrize(
    "target, fragment",
    [
        ("nocolon", "is not module:Attr or path/to/file.py:Attr"),
        ("nosuchpkg.mod:X", "cannot import module 'nosuchpkg.mod'"),
        ("pathlib:NoSuch", "module 'pathlib' has no attribute 'NoSuch'"),
        ("missing/file.py:X", "file 'missing/file.py' does not exist"),
    ],
)
def test_bad_targets_are_one_line(target: str, fragment: str) -> None:
    with pytest.raises(BenchError) as info:
        load_attr(target, "widget 'w'")
    message = str(info.value)
    assert message.startswith("widget 'w': ") and fragment in message and "\n" not in message


def test_file_target_loads_the_file_and_reloads_it_when_edited(tmp_path: Path) -> None:
    plugin = tmp_path / "my-plugin.py"
    plugin.write_text("class Thing:\n    colour = 'grey'\n")
    first = load_attr(f"{plugin}:Thing", "thing")
    assert first.colour == "grey"
    assert load_attr(f"{plugin}:Thing", "thing") is first  # unchanged file: loaded once
    assert target_of(first) == f"{plugin.resolve()}:Thing"
    assert sys.modules[first.__module__].__file__ == str(plugin.resolve())
    plugin.write_text("class Thing:\n    colour = 'red'\n")
    assert load_attr(f"{plugin}:Thing", "thing").colour == "red"


def test_relative_file_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "rel_plugin.py").write_text("VALUE = 7\n")
    monkeypatch.chdir(tmp_path)
    assert load_attr("rel_plugin.py:VALUE", "value") == 7


def test_check_runs_at_load() -> None:
    def refuse(obj: object) -> None:
        raise BenchError(f"refused {obj!r}")

    with pytest.raises(BenchError, match="refused"):
        load_attr("pathlib:Path", "thing", check=refuse)


def test_resolve_names_targets_and_did_you_mean() -> None:
    registry = {"path": "pathlib:Path", "purepath": "pathlib:PurePath"}
    assert resolve("path", registry, "kind") is Path
    assert resolve("pathlib:PurePosixPath", registry, "kind", targets=True).__name__ == "PurePosixPath"
    with pytest.raises(BenchError, match=r"unknown kind 'pth' \(did you mean 'path'"):
        resolve("pth", registry, "kind")
    with pytest.raises(BenchError, match="unknown kind 'pathlib:PurePosixPath'"):
        resolve("pathlib:PurePosixPath", registry, "kind")  # targets only when asked for


def test_entry_points(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dist = tmp_path / "site" / "thing_plugin-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: thing-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[dreambench.test_things]\npath = pathlib:Path\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert entry_point_targets("dreambench.test_things") == {"path": "pathlib:Path"}
    assert entry_point_objects("dreambench.test_things", "thing") == [Path]


def test_executors_and_facade_use_it() -> None:
    import dreambench

    assert executor_class("local").__name__ == "LocalExecutor"
    with pytest.raises(BenchError, match="unknown executor 'rya' \\(did you mean 'ray'"):
        executor_class("rya")
    assert dreambench.BenchError is BenchError
