"""The one direction of dependency (docs/ARCHITECTURE.md), checked on the source:

    root utilities (errors, atomic, cache_root, hold_points, lazy_registry, hub_fetch)  <  dataset  <  {metrics, the method contract}
        <  {reference_impl, leaderboard}  <  the harness (cli, commands, runner, executors, ...)

A module may import its own package and any lower layer, never a higher one or a sibling of its
own layer. Every import counts: module level, inside functions, and under TYPE_CHECKING. The
package root's ``__init__`` is the public facade (lazy attributes) and is not checked.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FOLDERS = {
    "bench": "dreambench",
    "dataset": "dreambench.dataset",
    "metrics": "dreambench.metrics",
    "reference_impl": "dreambench.reference_impl",
    "leaderboard": "dreambench.leaderboard",
}
ROOT_UTILITIES = {
    "dreambench.errors",
    "dreambench.atomic",
    "dreambench.cache_root",
    "dreambench.hold_points",
    "dreambench.lazy_registry",
    "dreambench.hub_fetch",
}
# The Method contract (a Protocol over dataset.Subject, and its handle) sits above the dataset, so
# that reference_impl's methods and outside plugins can use its types.
CONTRACT = {"dreambench.method"}
RANK = {
    "root": 0,
    "dataset": 1,
    "metrics": 2,
    "contract": 2,
    "reference_impl": 3,
    "leaderboard": 3,
    "harness": 4,
}


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for folder, package in FOLDERS.items():
        for path in sorted((REPO / folder).rglob("*.py")):
            parts = path.relative_to(REPO / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join((package, *parts))] = path
    return found


def layer(module: str) -> str:
    if module in ROOT_UTILITIES:
        return "root"
    if module in CONTRACT:
        return "contract"
    for sub in ("dataset", "metrics", "reference_impl", "leaderboard"):
        if module == f"dreambench.{sub}" or module.startswith(f"dreambench.{sub}."):
            return sub
    return "harness"


def _imports(path: Path, module: str) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            out.append((node.lineno, target))
            # `from dreambench import metrics` imports the subpackage, not the facade.
            if target == "dreambench":
                out += [(node.lineno, f"dreambench.{a.name}") for a in node.names]
    return [(line, name) for line, name in out if name == "dreambench" or name.startswith("dreambench.")]


def test_every_import_points_down() -> None:
    modules = _modules()
    assert len(modules) > 60
    violations = []
    for module, path in modules.items():
        if module == "dreambench":
            continue
        own = layer(module)
        for line, target in _imports(path, module):
            if target == "dreambench":
                continue  # `from dreambench import __version__`: the facade's constant
            theirs = layer(target)
            if theirs == own:
                continue
            if RANK[theirs] >= RANK[own]:
                violations.append(f"{path.relative_to(REPO)}:{line} ({own}) imports {target} ({theirs})")
    assert not violations, "imports against the layering:\n" + "\n".join(violations)


def test_the_checker_sees_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from dreambench.runner import execute_run\n")
    assert _imports(bad, "dreambench.metrics.bad") == [(2, "dreambench.runner")]
    assert layer("dreambench.runner") == "harness" and layer("dreambench.metrics.bad") == "metrics"


@pytest.mark.parametrize("package", ["dreambench.leaderboard", "dreambench.dataset"])
def test_package_imports_no_torch(package: str) -> None:
    names = [m for m in _modules() if m.startswith(package)]
    code = "import sys\n" + "".join(f"import {m}\n" for m in names) + (
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'diffusers', 'transformers'))\n"
        "sys.exit('imported: ' + ', '.join(bad) if bad else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr or result.stdout
