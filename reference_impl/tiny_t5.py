"""The embedded tiny T5 text encoder of ``tiny-flux`` and ``tiny-sd3``, and its offline tokenizer.

FLUX.1 (``text_encoder_2``) and Stable Diffusion 3 (``text_encoder_3``) condition on a T5 v1.1
encoder (google/t5-v1_1-xxl) with a SentencePiece unigram tokenizer. Neither the tokenizer model nor
the weights can be fetched offline, so the tiny models carry:

* a unigram tokenizer over single characters, built in code (no training, no randomness): the
  special tokens of T5 (``<pad>`` = 0, ``</s>`` = 1, ``<unk>`` = 2), the word-start marker "▁",
  and every printable ASCII character with and without the marker. Any ASCII prompt tokenizes
  without ``<unk>``; ``</s>`` is appended and ``<pad>`` fills to the pipeline's
  ``max_sequence_length``, as the real T5 tokenizer does. It is saved through transformers'
  ``T5Tokenizer`` (a ``tokenizers``-backed class: ``tokenizer.json``), which
  ``FluxPipeline.from_pretrained`` / ``StableDiffusion3Pipeline.from_pretrained`` load offline;
* a 2-layer gated-GELU ``T5EncoderModel`` of width 32 (T5 v1.1's layout), seeded by the caller.
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import T5EncoderModel

# FluxPipeline's and train_dreambooth_lora_flux.py's max_sequence_length default.
T5_MAX_LENGTH = 512

_SPECIAL = ("<pad>", "</s>", "<unk>")
_CHARS = tuple(c for c in string.printable if not c.isspace())


def _vocabulary() -> list[tuple[str, float]]:
    """(piece, log-probability) pairs: specials, "▁", "▁c" for each character, then bare "c".

    Scores make a word-start piece ("▁a") preferred over "▁" + "a", so a word starts with one piece.
    """
    pieces: list[tuple[str, float]] = [(token, 0.0) for token in _SPECIAL]
    pieces.append(("\u2581", -2.0))
    pieces += [("\u2581" + c, -3.0) for c in _CHARS]
    pieces += [(c, -4.0) for c in _CHARS]
    return pieces


def write_t5_tokenizer(dst: Path, model_max_length: int = T5_MAX_LENGTH) -> int:
    """Write the tiny T5 tokenizer to ``dst`` (``tokenizer.json`` + config); return its vocabulary size."""
    from transformers import T5Tokenizer

    tokenizer = T5Tokenizer(vocab=_vocabulary(), extra_ids=0, model_max_length=model_max_length)
    tokenizer.save_pretrained(str(dst))
    return len(tokenizer)


def tiny_t5_encoder(vocab_size: int, width: int = 32) -> T5EncoderModel:
    """A randomly initialised 2-layer T5 v1.1 encoder (gated GELU) of ``width``; seed the RNG first."""
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(
        T5Config(
            vocab_size=vocab_size,
            d_model=width,
            d_kv=width // 4,
            d_ff=2 * width,
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=8,
            feed_forward_proj="gated-gelu",
            pad_token_id=0,
            eos_token_id=1,
            decoder_start_token_id=0,
        )
    )
