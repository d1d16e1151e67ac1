"""The subject identifier: the word that stands for the subject in prompts ("a [V] dog").

Two schemes:

* ``"rare"`` — the DreamBooth paper's rare-token scheme (Ruiz et al., CVPR 2023, Sec. 3.2): pick a
  token that is rare, so it has a weak prior the fine-tuning can overwrite, and use its text as the
  identifier. The paper draws tokens of at most 3 characters from ids {5000, ..., 10000} of the
  T5-XXL sentencepiece vocabulary. Stable Diffusion uses CLIP's byte-level BPE, whose ids also
  follow frequency (id = 512 + merge rank). Rarity is *measured*, not assumed from the id: the
  candidates are the shipped, versioned list ``data/identifier_candidates.json``, built at build
  time by ``data/build_identifier_candidates.py`` (1-3 letter whole-word tokens from the tail of
  CLIP's vocabulary whose word frequency is below Zipf 2.5 in every language wordfreq covers, minus
  ``data/identifier_blocklist.txt``). The runtime only reads that list; its version and sha256
  (``candidate_list_identity``) are part of the run's identity. The choice is deterministic: sha256
  of the subject name picks the index, so each subject has its own stable identifier.
* any other string — used verbatim as the identifier (e.g. ``"sks"``, the diffusers README's).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING

from dreambench.errors import BenchError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

RARE_SCHEME = "rare"
CANDIDATES_FILE = "identifier_candidates.json"


@dataclass(frozen=True)
class CandidateList:
    """The shipped rare-token candidates: tokens in vocabulary-id order, their CLIP BPE ids, and
    the list's identity (name, version, sha256 over the tokens one per line)."""

    name: str
    version: int
    sha256: str
    tokens: tuple[str, ...]
    ids: tuple[int, ...]

    def identity(self) -> dict[str, object]:
        return {"name": self.name, "version": self.version, "sha256": self.sha256, "count": len(self.tokens)}


@lru_cache(maxsize=1)
def candidate_list() -> CandidateList:
    """The shipped candidate list, read once; its recorded sha256 is checked against its tokens."""
    text = resources.files("dreambench.reference_impl").joinpath("data").joinpath(CANDIDATES_FILE).read_text("utf-8")
    data = json.loads(text)
    tokens = tuple(str(c["token"]) for c in data["candidates"])
    digest = hashlib.sha256("".join(f"{t}\n" for t in tokens).encode()).hexdigest()
    if digest != data["sha256"]:
        # Hand-edited without rebuilding: the recorded identity would be false.
        raise BenchError(
            f"reference_impl/data/{CANDIDATES_FILE} lists tokens whose sha256 {digest[:12]} differs from the "
            f"recorded {data['sha256'][:12]}; rebuild it with reference_impl/data/build_identifier_candidates.py"
        )
    return CandidateList(
        name=str(data["name"]),
        version=int(data["version"]),
        sha256=digest,
        tokens=tokens,
        ids=tuple(int(c["id"]) for c in data["candidates"]),
    )


def rare_token_candidates() -> tuple[str, ...]:
    """All identifiers the rare scheme may pick, in vocabulary-id order."""
    return candidate_list().tokens


def candidate_list_identity() -> dict[str, object]:
    """Name, version, sha256 and size of the candidate list (recorded in results and the run identity)."""
    return candidate_list().identity()


def choose_identifier(scheme: str, tokenizer: PreTrainedTokenizerBase | None, subject_name: str) -> str:
    """The identifier for ``subject_name`` under ``scheme`` ("rare" or a fixed string such as "sks").

    ``tokenizer`` is only needed (and only read) for the rare scheme: the chosen token must be the
    same single token there as in CLIP's BPE, the vocabulary the list was measured on.
    """
    if scheme != RARE_SCHEME:
        if not scheme.strip() or scheme != scheme.strip():
            raise BenchError(f"identifier {scheme!r} must be 'rare' or a non-empty word such as 'sks'")
        return scheme
    if tokenizer is None:
        raise BenchError("identifier scheme 'rare' needs the base model's tokenizer")
    candidates = candidate_list()
    digest = hashlib.sha256(f"dreambench-identifier:{subject_name}".encode()).digest()
    index = int.from_bytes(digest[:8], "big") % len(candidates.tokens)
    token, token_id = candidates.tokens[index], candidates.ids[index]
    if tokenizer(token, add_special_tokens=False).input_ids != [token_id]:
        raise BenchError(
            f"identifier scheme 'rare': this base model's tokenizer does not map {token!r} to CLIP BPE id "
            f"{token_id}, the vocabulary the candidates were measured on; use a fixed identifier such as identifier=sks"
        )
    return token
