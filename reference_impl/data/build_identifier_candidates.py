"""Build ``identifier_candidates.json``: the rare-token identifiers, rare by measurement.

Run at build time, never at runtime (the runtime and the tests only read the shipped JSON):

    .venv/bin/pip install wordfreq
    .venv/bin/python reference_impl/data/build_identifier_candidates.py

The rule (docs/DREAMBOOTH.md, "Identifiers"):

1. Structure, as the DreamBooth paper's (Sec. 3.2: tokens of at most 3 characters from a rare
   range of the vocabulary): whole-word tokens (``...</w>``) of CLIP's BPE vocabulary with ids in
   ``ID_RANGE`` (the last ~20% of merges; ids follow merge rank, i.e. frequency), spelled with 1-3
   lowercase ASCII letters, that tokenize back to exactly that one token.
2. Rarity, measured: the token's highest word frequency over every language of ``wordfreq``
   (its "best" word list per language; an absent word counts 0) must be below
   ``10 ** (MAX_ZIPF - 9)``, i.e. Zipf < ``MAX_ZIPF`` in every language.
3. Decency: no token on ``identifier_blocklist.txt``.

Bump ``LIST_VERSION`` whenever the rule, the threshold, the blocklist or wordfreq's data change
the output: the list's version and sha256 are part of every run's identity that uses it.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import re
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

LIST_VERSION = 1
ID_RANGE = (40000, 49406)
# Zipf 2.5 = 3.2 occurrences per 10 million words. The tokens named as too common (pox 3.0 in
# English, jdm 2.9 in French, sdk, aol, bmi, hdd, lsd: 3.2-3.9) all lie above it.
MAX_ZIPF = 2.5
HERE = Path(__file__).resolve().parent
OUTPUT = HERE / "identifier_candidates.json"
BLOCKLIST = HERE / "identifier_blocklist.txt"
_WORD = re.compile(r"[a-z]{1,3}")


def vocab_tail_words(tokenizer: PreTrainedTokenizerBase) -> list[tuple[str, int]]:
    """Step 1: (word, token id) of every structurally eligible token, in id order."""
    lo, hi = ID_RANGE
    out: list[tuple[str, int]] = []
    for token, token_id in sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1]):
        if not (lo <= token_id < hi and token.endswith("</w>")):
            continue
        word = token[: -len("</w>")]
        if _WORD.fullmatch(word) and tokenizer(word, add_special_tokens=False).input_ids == [token_id]:
            out.append((word, token_id))
    return out


def read_blocklist(path: Path = BLOCKLIST) -> frozenset[str]:
    """The blocklist's terms (comments and blank lines skipped)."""
    lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return frozenset(line for line in lines if line and not line.startswith("#"))


def zipf(frequency: float) -> float:
    """wordfreq's Zipf scale: log10 of occurrences per billion words (0 for an absent word)."""
    return 0.0 if frequency <= 0 else math.log10(frequency) + 9


def select_candidates(
    words: Iterable[tuple[str, int]],
    max_frequency: Callable[[str], tuple[float, str]],
    blocklist: frozenset[str],
    max_zipf: float = MAX_ZIPF,
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Steps 2-3 over step 1's ``words``: the kept candidates and how many each step removed.

    ``max_frequency(word)`` -> (highest frequency over the languages, that language).
    """
    words = list(words)
    kept: list[dict[str, Any]] = []
    too_common = blocked = 0
    for word, token_id in words:
        frequency, language = max_frequency(word)
        if zipf(frequency) >= max_zipf:
            too_common += 1
            continue
        if word in blocklist:
            blocked += 1
            continue
        kept.append({"token": word, "id": token_id, "max_zipf": round(zipf(frequency), 3), "language": language})
    counts = {"structural": len(words), "too_common": too_common, "blocked": blocked, "candidates": len(kept)}
    return kept, counts


def wordfreq_lookup() -> tuple[Callable[[str], tuple[float, str]], dict[str, Any]]:
    """Highest frequency of a word over wordfreq's languages, and a description of the data used.

    Reads each language's frequency table directly (an exact lookup of the lowercase word), which
    avoids the CJK tokenizers wordfreq's ``word_frequency`` would need for ja/ko/zh.
    """
    import wordfreq

    languages = sorted(wordfreq.available_languages(wordlist="best"))
    tables = {lang: wordfreq.get_frequency_dict(lang, wordlist="best") for lang in languages}

    def lookup(word: str) -> tuple[float, str]:
        best = max(languages, key=lambda lang: (tables[lang].get(word, 0.0), lang))
        return tables[best].get(word, 0.0), best

    from importlib.metadata import version

    return lookup, {"package": "wordfreq", "version": version("wordfreq"), "wordlist": "best", "languages": languages}


def candidates_sha256(tokens: Iterable[str]) -> str:
    """The list's identity: sha256 of its tokens, one per line, in order (what changes a choice)."""
    return hashlib.sha256("".join(f"{t}\n" for t in tokens).encode()).hexdigest()


def build(output: Path = OUTPUT) -> dict[str, Any]:
    """Measure, filter and write the candidate list; returns what was written."""
    from transformers import CLIPTokenizer

    from dreambench.atomic import atomic_write_json
    from dreambench.metrics.convert import write_clip_tokenizer

    with tempfile.TemporaryDirectory() as tmp:
        write_clip_tokenizer(Path(tmp))  # the real CLIP BPE vocabulary, as Stable Diffusion v1/v2 use
        tokenizer = CLIPTokenizer.from_pretrained(tmp)
    lookup, frequency_source = wordfreq_lookup()
    blocklist = read_blocklist()
    kept, counts = select_candidates(vocab_tail_words(tokenizer), lookup, blocklist)
    tokens = [c["token"] for c in kept]
    data = {
        "name": "dreambench-rare-identifiers",
        "version": LIST_VERSION,
        "sha256": candidates_sha256(tokens),
        "rule": {
            "vocabulary": "CLIP BPE (open_clip bpe_simple_vocab_16e6.txt.gz, 49,408 ids; Stable Diffusion v1/v2)",
            "id_range": list(ID_RANGE),
            "structure": "whole-word token of 1-3 lowercase ASCII letters that tokenizes back to itself",
            "max_zipf": MAX_ZIPF,
            "frequency": "highest word frequency over all languages below 10**(max_zipf - 9)",
            "blocklist": BLOCKLIST.name,
            "blocklist_sha256": hashlib.sha256(BLOCKLIST.read_bytes()).hexdigest(),
        },
        "frequency_source": frequency_source,
        "counts": counts,
        "candidates": kept,
    }
    atomic_write_json(output, data)
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    data = build(args.output)
    c = data["counts"]
    print(
        f"{args.output}: {c['structural']} structural candidates, {c['too_common']} too common "
        f"(Zipf >= {MAX_ZIPF}), {c['blocked']} blocklisted -> {c['candidates']} candidates "
        f"(version {data['version']}, sha256 {data['sha256'][:12]})"
    )


if __name__ == "__main__":
    main()
