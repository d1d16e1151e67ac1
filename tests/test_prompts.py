"""Prompt sets: the shipped set is exactly the paper's lists; custom files are validated."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from dreambench.dataset.manifest import canonical_json_bytes
from dreambench.dataset.prompts import PROMPT_SETS, PromptSet, available_prompt_sets, load_prompt_set
from dreambench.errors import BenchError


def _official_lists(dreambench_data: Path) -> tuple[list[str], list[str]]:
    root = dreambench_data / "dataset" if (dreambench_data / "dataset").is_dir() else dreambench_data
    text = (root / "prompts_and_classes.txt").read_text(encoding="utf-8")
    object_part, live_part = text.split("Object Prompts", 1)[1].split("Live Subject Prompts", 1)
    pattern = re.compile(r"^'(.*)'\.format\(unique_token, class_token\),?\s*$", re.MULTILINE)
    return pattern.findall(object_part), pattern.findall(live_part)


def test_shipped_set_equals_the_official_text(dreambench_data: Path) -> None:
    official_object, official_live = _official_lists(dreambench_data)
    shipped = load_prompt_set("dreambench")
    assert (shipped.name, shipped.version) == ("dreambench", "1")
    assert list(shipped.object) == official_object and len(official_object) == 25
    assert list(shipped.live) == official_live and len(official_live) == 25
    assert shipped.templates("live") == shipped.live and shipped.templates("object") == shipped.object


def test_every_shipped_set_loads() -> None:
    assert available_prompt_sets() == sorted(PROMPT_SETS)
    for name in available_prompt_sets():
        assert load_prompt_set(name).name == name


def test_render_formats_and_collapses_whitespace() -> None:
    shipped = load_prompt_set("dreambench")
    assert shipped.render("object", "sks", "backpack")[0] == "a sks backpack in the jungle"
    assert shipped.render("live", "", "dog")[0] == "a dog in the jungle"
    assert shipped.render("live", "", "dog")[20] == "a red dog"
    assert len(shipped.render("object", "sks", "vase")) == 25
    with pytest.raises(BenchError, match="valid: live, object"):
        shipped.templates("animal")


def test_sha256_is_the_hash_of_canonical_json() -> None:
    import hashlib

    shipped = load_prompt_set("dreambench")
    payload = {
        "name": "dreambench",
        "version": "1",
        "object": list(shipped.object),
        "live": list(shipped.live),
    }
    assert shipped.sha256 == hashlib.sha256(canonical_json_bytes(payload)).hexdigest()
    changed = PromptSet(shipped.name, "2", shipped.object, shipped.live)
    assert changed.sha256 != shipped.sha256


def test_custom_json_and_yaml_files(tmp_path: Path) -> None:
    doc = {"name": "mine", "version": "3", "object": ["a {0} {1} on a desk"], "live": ["a {0} {1} asleep"]}
    json_path = tmp_path / "mine.json"
    json_path.write_text(json.dumps(doc))
    yaml_path = tmp_path / "mine.yaml"
    yaml_path.write_text(
        "name: mine\nversion: '3'\nobject:\n  - a {0} {1} on a desk\nlive:\n  - a {0} {1} asleep\n"
    )
    from_json, from_yaml = load_prompt_set(str(json_path)), load_prompt_set(str(yaml_path))
    assert from_json == from_yaml == PromptSet("mine", "3", ("a {0} {1} on a desk",), ("a {0} {1} asleep",))
    assert from_json.render("live", "sks", "cat") == ["a sks cat asleep"]


@pytest.mark.parametrize(
    ("doc", "problem"),
    [
        ({"object": ["a {0} {1}"]}, "non-empty list 'live'"),
        ({"object": [], "live": ["a {0} {1}"]}, "non-empty list 'object'"),
        ({"object": ["a {1} only"], "live": ["a {0} {1}"]}, r"object\[0\].*\{0\}"),
        ({"object": ["a {0} {1}"], "live": ["a {0} {1} {2}"]}, r"live\[0\]"),
        ({"object": ["a {0} {1}"], "live": [""]}, r"live\[0\].*non-empty string"),
        ({"object": ["a {0} {1}"], "live": [7]}, r"live\[0\]"),
        ({"object": ["a {0} {1} {"], "live": ["a {0} {1}"]}, r"object\[0\].*format string"),
        ({"objects": ["a {0} {1}"], "live": ["a {0} {1}"]}, "unknown key.*objects"),
        ([1, 2], "must be a mapping"),
    ],
)
def test_bad_files_name_the_file_and_the_problem(tmp_path: Path, doc: object, problem: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(BenchError, match=problem) as info:
        load_prompt_set(str(path))
    assert str(path) in str(info.value)


def test_unparseable_missing_and_unknown(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(BenchError, match="broken.json is not valid JSON"):
        load_prompt_set(str(broken))
    with pytest.raises(BenchError, match="absent.yaml not found"):
        load_prompt_set(str(tmp_path / "absent.yaml"))
    with pytest.raises(BenchError, match=r"unknown prompt set 'dreambnch'.*'dreambench'"):
        load_prompt_set("dreambnch")
