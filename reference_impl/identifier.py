"""The subject identifier: the word that stands for the subject in prompts ("a [V] dog").

Two schemes:

* ``"rare"`` — the DreamBooth paper's rare-token scheme (Ruiz et al., CVPR 2023, Sec. 3.2): pick a
  token that is rare in the vocabulary, so it has a weak prior the fine-tuning can overwrite, and
  use its text as the identifier. The paper draws tokens of at most 3 characters from ids
  {5000, ..., 10000} of the T5-XXL sentencepiece vocabulary (32k, ids ordered by frequency).
  Stable Diffusion uses CLIP's byte-level BPE instead, whose ids are also ordered by frequency
  (id = 512 + merge rank; later merges joined rarer pairs). We use the tail of the merge list,
  ``RARE_RANGE`` = ids [40000, 49406) — the last ~20% of merges, where "sks" (48136) also lives —
  and keep a token only if it is a whole word (ends with "</w>"), is 1-3 lowercase ASCII letters
  (decodable, no spaces or punctuation), and tokenizes back to exactly that one token. The choice
  among the candidates is deterministic: sha256 of the subject name picks the index, so each
  subject has its own stable identifier and reruns reproduce it.
* any other string — used verbatim as the identifier (e.g. ``"sks"``, the diffusers README's).
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache
from typing import TYPE_CHECKING

from dreambench.errors import BenchError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

RARE_SCHEME = "rare"
RARE_RANGE = (40000, 49406)
_WORD = re.compile(r"[a-z]{1,3}")


def rare_token_candidates(tokenizer: PreTrainedTokenizerBase) -> tuple[str, ...]:
    """All identifiers the rare scheme may pick for this tokenizer, in vocabulary-id order."""
    return _candidates(tokenizer)


@lru_cache(maxsize=4)
def _candidates(tokenizer: PreTrainedTokenizerBase) -> tuple[str, ...]:
    lo, hi = RARE_RANGE
    vocab = tokenizer.get_vocab()
    by_id = {i: t for t, i in vocab.items() if lo <= i < hi}
    out: list[str] = []
    for token_id in sorted(by_id):
        token = by_id[token_id]
        if not token.endswith("</w>"):
            continue
        word = token[: -len("</w>")]
        if not _WORD.fullmatch(word):
            continue
        if tokenizer(word, add_special_tokens=False).input_ids != [token_id]:
            continue
        out.append(word)
    return tuple(out)


def choose_identifier(scheme: str, tokenizer: PreTrainedTokenizerBase | None, subject_name: str) -> str:
    """The identifier for ``subject_name`` under ``scheme`` ("rare" or a fixed string such as "sks").

    ``tokenizer`` is only needed (and only read) for the rare scheme.
    """
    if scheme != RARE_SCHEME:
        if not scheme.strip() or scheme != scheme.strip():
            raise BenchError(f"identifier {scheme!r} must be 'rare' or a non-empty word such as 'sks'")
        return scheme
    if tokenizer is None:
        raise BenchError("identifier scheme 'rare' needs the base model's tokenizer")
    candidates = _candidates(tokenizer)
    if not candidates:
        raise BenchError(
            f"identifier scheme 'rare' found no 1-3 letter single-token words in ids {RARE_RANGE[0]}-{RARE_RANGE[1]} "
            "of this tokenizer; use a fixed identifier such as identifier=sks"
        )
    digest = hashlib.sha256(f"dreambench-identifier:{subject_name}".encode()).digest()
    return candidates[int.from_bytes(digest[:8], "big") % len(candidates)]
