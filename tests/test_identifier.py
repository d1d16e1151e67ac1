"""The rare-token identifier: rare by measurement (shipped, versioned candidate list), never
offensive, deterministic per subject, and part of the run's identity."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

import dreambench.reference_impl as reference_impl
from dreambench.dataset.manifest import load_manifest
from dreambench.reference_impl.base_model import load_tokenizer
from dreambench.reference_impl.identifier import (
    candidate_list,
    candidate_list_identity,
    choose_identifier,
    rare_token_candidates,
)

DATA = Path(reference_impl.__file__).parent / "data"
# Common words and abbreviations, a slur and a profanity that CLIP's vocabulary tail holds.
NAMED = ("pox", "lsd", "jdm", "sdk", "aol", "bmi", "hdd", "jap", "fck")


def build_script() -> ModuleType:
    """reference_impl/data/build_identifier_candidates.py (a build-time script, not a module)."""
    path = DATA / "build_identifier_candidates.py"
    spec = importlib.util.spec_from_file_location("build_identifier_candidates", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tokenizer():  # noqa: ANN201 - a transformers CLIPTokenizer
    return load_tokenizer("tiny")


def test_common_and_offensive_tokens_are_not_candidates() -> None:
    candidates = set(rare_token_candidates())
    assert not candidates & set(NAMED)
    blocklist = build_script().read_blocklist()
    assert {"jap", "fck"} <= blocklist and not candidates & blocklist


def test_shipped_list_follows_its_build_rule(tokenizer) -> None:  # noqa: ANN001
    script = build_script()
    structural = dict(script.vocab_tail_words(tokenizer))
    shipped = candidate_list()
    raw = json.loads((DATA / "identifier_candidates.json").read_text())
    # Every candidate passes the structural rule with the id it records, and its measured
    # frequency (recorded beside it) is below the stated threshold.
    assert all(structural.get(t) == i for t, i in zip(shipped.tokens, shipped.ids, strict=True))
    assert all(c["max_zipf"] < raw["rule"]["max_zipf"] == script.MAX_ZIPF for c in raw["candidates"])
    assert raw["counts"]["structural"] == len(structural)
    assert raw["counts"]["candidates"] == len(shipped.tokens) == candidate_list_identity()["count"]
    assert script.candidates_sha256(shipped.tokens) == shipped.sha256 == candidate_list_identity()["sha256"]
    # The structural rule alone keeps the named tokens: the measurement is what removes them.
    assert set(NAMED) <= set(structural)


def test_selection_drops_frequent_and_blocklisted_words() -> None:
    script = build_script()
    frequencies = {"aaa": (0.0, "en"), "bbb": (2e-7, "pl"), "ccc": (1e-6, "en"), "ddd": (1e-9, "fr")}
    kept, counts = script.select_candidates(
        [("aaa", 40001), ("bbb", 40002), ("ccc", 40003), ("ddd", 40004)],
        frequencies.__getitem__,
        frozenset({"ddd"}),
        max_zipf=2.5,
    )
    # Zipf of 2e-7 is 2.3 (kept), of 1e-6 is 3.0 (too common); ddd is rare but blocklisted.
    assert [c["token"] for c in kept] == ["aaa", "bbb"]
    assert counts == {"structural": 4, "too_common": 1, "blocked": 1, "candidates": 2}


def test_choice_is_deterministic_per_subject(tokenizer) -> None:  # noqa: ANN001
    subjects = sorted(load_manifest()["subjects"])
    assert len(subjects) == 30
    first = {name: choose_identifier("rare", tokenizer, name) for name in subjects}
    assert first == {name: choose_identifier("rare", tokenizer, name) for name in subjects}
    # Pinned for list version 1: the choice does not depend on the machine or the process.
    assert candidate_list().version == 1 and first["dog"] == "awn"
    assert len(set(first.values())) > 20  # mostly different per subject
    for ident in first.values():
        assert tokenizer(f"a {ident} dog", add_special_tokens=False).input_ids[1:2] == [
            candidate_list().ids[candidate_list().tokens.index(ident)]
        ]


def test_candidate_list_is_in_the_run_identity() -> None:
    from dreambench.dataset.prompts import load_prompt_set
    from dreambench.method import RunContext
    from dreambench.registry import create_method
    from dreambench.runner import make_run_config

    def config(identifier: str):  # noqa: ANN202 - a RunConfig
        context = RunContext(device="cpu", method_preset="smoke", run_preset="smoke")
        method = create_method("dreambooth", "smoke", {"identifier": identifier}, context)
        return make_run_config(
            method=method,
            method_args={"identifier": identifier},
            preset="smoke",
            method_preset="smoke",
            metric_preset="smoke",
            prompt_set=load_prompt_set("dreambench"),
            images_per_prompt=1,
            base_seed=0,
            dataset_info={},
        )

    rare, fixed = config("rare"), config("sks")
    identity = candidate_list_identity()
    assert set(identity) == {"name", "version", "sha256", "count"}
    assert rare.identifier_candidates == identity and rare.to_dict()["identifier_candidates"] == identity
    assert fixed.identifier_candidates is None
