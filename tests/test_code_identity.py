"""A method's code is part of its run's identity (dreambench.code_identity), and a method can be
named by its file (``--method path/to/file.py:Class``).

The defect this guards against: a plugin rendering grey squares is run, edited to render red
squares and run again with the same command; the old grey images must never be reused silently.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from method_files import write_method_file
from PIL import Image

from dreambench.cli import main
from dreambench.code_identity import code_identity
from dreambench.method import MethodHandle
from dreambench.registry import create_method

ONE_PROMPT = {"name": "one", "version": "t1", "object": ["a {0} {1}"], "live": ["a {0} {1}"]}

GREY, RED = (128, 128, 128), (255, 0, 0)


def write_plugin(path: Path, colour: tuple[int, int, int], version: str = "") -> Path:
    """A method rendering flat squares of ``colour``."""
    members = f"""
        version = "{version}"

        @dataclass(frozen=True)
        class Config:
            size: int = 16

        PRESETS = {{"default": Config()}}

        def __init__(self, config):
            self.config = config
    """
    generate = f"return [Image.new('RGB', (self.config.size,) * 2, {colour}) for _ in prompts]"
    return write_method_file(path, "Squares", "squares", generate, members)


@pytest.fixture()
def prompts_file(tmp_path: Path) -> Path:
    path = tmp_path / "one.json"
    path.write_text(json.dumps(ONE_PROMPT))
    return path


def _run(method: str, prompts: Path, data: Path, out: Path) -> int:
    return main(
        [
            "run", "--method", method, "--subjects", "dog", "--prompts", str(prompts),
            "--images-per-prompt", "1", "--preset", "smoke", "--data", str(data), "--out", str(out),
            "--device", "cpu", "--quiet",
        ]
    )  # fmt: skip


def _colours(run_dir: Path) -> set[tuple[int, ...]]:
    images = sorted((run_dir / "subjects" / "dog" / "images").glob("*.png"))
    assert images
    return {Image.open(p).convert("RGB").getpixel((0, 0)) for p in images}


def test_edited_file_plugin_renders_anew_in_a_new_run_directory(
    prompts_file: Path, dreambench_data: Path, tmp_path: Path
) -> None:
    plugin = write_plugin(tmp_path / "my_method.py", GREY)
    out = tmp_path / "runs"
    assert _run(f"{plugin}:Squares", prompts_file, dreambench_data, out) == 0
    (first,) = out.iterdir()
    assert _colours(first) == {GREY}
    run = json.loads((first / "results.json").read_text())["run"]
    assert run["code"]["sources"] == "my_method.py" and len(run["code"]["sha256"]) == 64
    config = json.loads((first / "config.json").read_text())
    # The absolute file path: another process (a Ray worker) loads the same file again.
    assert config["method_class"] == f"{plugin.resolve()}:Squares"

    write_plugin(plugin, RED)
    assert _run(f"{plugin}:Squares", prompts_file, dreambench_data, out) == 0
    second = next(d for d in out.iterdir() if d != first)
    assert _colours(second) == {RED}
    assert _colours(first) == {GREY}  # the old run is left as it was, not relabelled
    assert json.loads((second / "results.json").read_text())["run"]["code"] != run["code"]


def test_relative_file_path_runs(
    prompts_file: Path, dreambench_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "plugins").mkdir()
    write_plugin(tmp_path / "plugins" / "squares_rel.py", GREY)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "runs"
    assert _run("plugins/squares_rel.py:Squares", prompts_file, dreambench_data, out) == 0
    (run_dir,) = out.iterdir()
    assert run_dir.name.startswith("squares-smoke-") and _colours(run_dir) == {GREY}


def test_edited_module_on_the_path_renders_anew(
    prompts_file: Path, dreambench_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    write_plugin(site / "squares_mod.py", GREY)
    monkeypatch.syspath_prepend(str(site))
    out = tmp_path / "runs"
    assert _run("squares_mod:Squares", prompts_file, dreambench_data, out) == 0
    write_plugin(site / "squares_mod.py", RED)
    monkeypatch.delitem(sys.modules, "squares_mod")  # the next `bench run` is a new process
    assert _run("squares_mod:Squares", prompts_file, dreambench_data, out) == 0
    assert sorted(_colours(d) == {RED} for d in out.iterdir()) == [False, True]


def _handle(target: str) -> MethodHandle:
    return create_method(target, "default", {})


def test_declared_version_is_part_of_the_identity(tmp_path: Path) -> None:
    one = write_plugin(tmp_path / "v_one.py", GREY, version="1")
    two = write_plugin(tmp_path / "v_two.py", GREY, version="2")
    a, b = code_identity(_handle(f"{one}:Squares")), code_identity(_handle(f"{two}:Squares"))
    assert a["version"] == "1" and b["version"] == "2"
    assert a["sha256"] != b["sha256"]


def _fake_distribution(site: Path, editable: bool) -> None:
    dist = site / "squares_pkg-2.5.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: squares-pkg\nVersion: 2.5\n")
    (dist / "top_level.txt").write_text("squares_pkg\n")
    if editable:
        (dist / "direct_url.json").write_text(json.dumps({"url": "file:///src", "dir_info": {"editable": True}}))
    package = site / "squares_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    write_plugin(package / "method.py", GREY)


@pytest.mark.parametrize("editable", [False, True])
def test_installed_plugin_is_identified_by_its_distribution(
    editable: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    _fake_distribution(site, editable)
    monkeypatch.syspath_prepend(str(site))
    for name in [m for m in sys.modules if m.startswith("squares_pkg")]:
        monkeypatch.delitem(sys.modules, name)
    code = code_identity(_handle("squares_pkg.method:Squares"))
    assert code["package"] == {"name": "squares-pkg", "version": "2.5"}
    if editable:  # its files change under the same version: their digest counts too
        assert code["sources"] == "squares_pkg" and len(code["sha256"]) == 64
    else:
        assert code["sources"] is None and code["sha256"] is None


def test_builtin_identity_is_dreambench_version_and_source_digest() -> None:
    from dreambench import __version__

    code = code_identity(_handle("real-images"))
    assert code["package"] == {"name": "dreambench", "version": __version__}
    assert code["sources"] == "dreambench.reference_impl" and len(code["sha256"]) == 64
    assert code == code_identity(_handle("dreambench.reference_impl.real_images:RealImages"))


def test_missing_file_is_one_line(
    prompts_file: Path, dreambench_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "runs"
    assert _run(f"{tmp_path / 'nope.py'}:Squares", prompts_file, dreambench_data, out) == 2
    err = capsys.readouterr().err
    assert "nope.py' does not exist" in err and err.count("\n") == 1
    assert not out.exists()


def test_a_worker_refuses_other_code_than_the_runs(tmp_path: Path) -> None:
    """A Ray worker rebuilds the method from ``config.method_class``; if the file changed since the
    driver recorded the run's code identity, it refuses instead of filing new images as old."""
    from dataclasses import replace

    from dreambench.config import RunConfig
    from dreambench.errors import BenchError
    from dreambench.runner import RunSpec, SubjectWorker

    plugin = write_plugin(tmp_path / "worker_plugin.py", GREY)
    handle = _handle(f"{plugin}:Squares")
    config = RunConfig(
        method="squares", method_preset="default", method_config={"size": 16}, preset="smoke",
        metric_preset="smoke", prompt_set={}, images_per_prompt=1, base_seed=0, dataset={},
        method_class=handle.source()["class"], code=code_identity(handle),
    )  # fmt: skip
    spec = RunSpec(config=config, method_args={}, prompt_set=None, run_dir=tmp_path / "run", device="cpu")  # type: ignore[arg-type]
    assert SubjectWorker(spec).method.name == "squares"  # same code: built
    write_plugin(plugin, RED)
    with pytest.raises(BenchError, match="the code loaded here .* differs from the run's"):
        _ = SubjectWorker(spec).method
    assert SubjectWorker(replace(spec, config=replace(config, code=None))).method.name == "squares"
