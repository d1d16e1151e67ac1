"""The ``textual-inversion`` method: learn one new word embedding for the subject (Gal et al., ICLR
2023), the DreamBooth paper's Textual Inversion comparison row.

Per subject, ``prepare``:

1. adds a placeholder token such as ``<sks-dog>`` to the tokenizer and one row to the text
   encoder's token embeddings, initialised from the class noun's embedding (the mean of its tokens'
   embeddings when the noun is several tokens, e.g. "stuffed animal"; diffusers' script insists
   on a single initializer token),
2. trains only that row: the text encoder runs forward every step, AdamW updates the embedding
   matrix and the rows of all other tokens are restored after each step (diffusers'
   ``examples/textual_inversion/textual_inversion.py``); the UNet and VAE stay frozen and there is
   no prior-preservation term. Each step's caption is one of TI's 27 object templates ("a photo of
   a <sks-dog>", ...), drawn at random as both reference implementations do,
3. saves ``weights/learned_embeds.safetensors`` = ``{"<sks-dog>": tensor[1, dim]}``, which stock
   ``pipe.load_textual_inversion(path, token="<sks-dog>")`` loads.

The harness prompts with ``identifier(subject)`` = the placeholder and keeps the class noun ("a
<sks-dog> dog in the jungle"), as for every method. The training loop, the done marker, rendering
and ``release`` are DreamBooth's (``TextualInversion`` subclasses ``DreamBooth``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from dreambench.atomic import atomic_write_bytes
from dreambench.errors import BenchError
from dreambench.reference_impl.base_method import ModelSettings, require_sampler
from dreambench.reference_impl.base_model import Components, load_base_model
from dreambench.reference_impl.checked_settings import at_least, non_empty, positive, positive_or_inf
from dreambench.reference_impl.dreambooth import DreamBooth, read_done
from dreambench.reference_impl.dreambooth_trainer import TrainSettings
from dreambench.reference_impl.tiny_trained import TINY_TRAINED_ID

if TYPE_CHECKING:
    import torch

    from dreambench.dataset.subject import Subject
    from dreambench.reference_impl.dreambooth_trainer import TrainingData, TrainResult

LEARNED_EMBEDS_FILE = "learned_embeds.safetensors"
"""diffusers' file name for a learned embedding (``load_textual_inversion``'s default)."""

# imagenet_templates_small of the TI authors' ldm/data/personalized.py, copied verbatim by
# diffusers' textual_inversion.py (learnable_property="object").
OBJECT_TEMPLATES: tuple[str, ...] = (
    "a photo of a {}",
    "a rendering of a {}",
    "a cropped photo of the {}",
    "the photo of a {}",
    "a photo of a clean {}",
    "a photo of a dirty {}",
    "a dark photo of the {}",
    "a photo of my {}",
    "a photo of the cool {}",
    "a close-up photo of a {}",
    "a bright photo of the {}",
    "a cropped photo of a {}",
    "a photo of the {}",
    "a good photo of the {}",
    "a photo of one {}",
    "a close-up photo of the {}",
    "a rendition of the {}",
    "a photo of the clean {}",
    "a rendition of a {}",
    "a photo of a nice {}",
    "a good photo of a {}",
    "a photo of the nice {}",
    "a photo of the small {}",
    "a photo of the weird {}",
    "a photo of the large {}",
    "a photo of a cool {}",
    "a photo of a small {}",
)

# SD 1.x text encoder width: the disk estimate's fallback when the base model is not available.
_SD15_TEXT_WIDTH = 768


def placeholder_for(template: str, subject_name: str) -> str:
    """The placeholder token of a subject: ``template`` with ``{subject}`` replaced; one word, no spaces."""
    try:
        token = template.format(subject=subject_name)
    except (KeyError, IndexError, ValueError):
        raise BenchError(
            f"placeholder_token {template!r} may only use {{subject}} (e.g. '<sks-{{subject}}>')"
        ) from None
    if not token or token != "".join(token.split()) or token != token.lower():
        raise BenchError(
            f"placeholder_token {template!r} gives {token!r} for subject {subject_name!r}; it must be one lowercase word without spaces"
        )
    return token


class TextualInversion(DreamBooth):
    """Textual Inversion: one learned token embedding per subject; every model weight stays frozen."""

    name = "textual-inversion"
    weights_marker = LEARNED_EMBEDS_FILE
    identifier_scheme = None  # a per-subject placeholder token, never the rare-token list

    @dataclass(frozen=True)
    class Config(ModelSettings, TrainSettings):
        """Textual Inversion hyperparameters: the shared model and trainer fields (same meaning as
        DreamBooth.Config's) with TI's defaults, plus the placeholder token. No prior preservation:
        TI trains on the subject's images alone. The sampler is the run preset's render protocol."""

        # rinongal/textual_inversion v1-finetune.yaml (see PRESETS): 6100 steps, batch 2, no clipping.
        train_steps: int = field(default=6100, metadata=at_least(1))
        learning_rate: float = field(default=1e-2, metadata=positive())
        train_batch_size: int = field(default=2, metadata=at_least(1))
        # Neither the TI authors' code nor diffusers' script clips gradients: inf = no clipping.
        max_grad_norm: float = field(default=math.inf, metadata=positive_or_inf())
        # The new token, per subject: {subject} is the subject's name ("<sks-dog>", "<sks-dog2>").
        placeholder_token: str = field(default="<sks-{subject}>", metadata=non_empty())

        def check_combination(self) -> None:
            super().check_combination()
            placeholder_for(self.placeholder_token, "subject")  # a bad template fails now, not mid-run

    PRESETS: dict[str, Config] = {
        # The DreamBooth paper's TI row (Table 1, "Textual Inversion (Stable Diffusion)") ran TI with
        # its authors' settings. For Stable Diffusion those are rinongal/textual_inversion's
        # configs/stable-diffusion/v1-finetune.yaml: base_learning_rate 5e-3, batch_size 2,
        # max_steps 6100, AdamW, no clipping; main.py scales the rate by batch x GPUs (1 GPU in the
        # README's command): 1e-2.
        "paper": Config(),
        # diffusers examples/textual_inversion/README.md ("Cat toy example"): --train_batch_size=1
        # --gradient_accumulation_steps=4 --max_train_steps=3000 --learning_rate=5.0e-04 --scale_lr
        # --lr_scheduler=constant --lr_warmup_steps=0. Accumulating 4 micro-batches of 1 (accelerate
        # averages them) is one batch of 4; --scale_lr multiplies 5e-4 by 4 -> 2e-3.
        "diffusers": Config(train_steps=3000, learning_rate=2e-3, train_batch_size=4),
        # Embedded tiny-trained model on CPU (uncalibrated). 40 steps of batch 1 (and 200 of batch
        # 1 at 1e-2 to 1e-1) did not move the renders; 200 steps of batch 8 at 5e-2 put them above
        # the base-model floor on the smoke embedders (docs/PERFORMANCE.md).
        "smoke": Config(
            base_model=TINY_TRAINED_ID,
            train_steps=200,
            learning_rate=5e-2,
            train_batch_size=8,
            render_batch_size=50,
            mixed_precision="no",
        ),
    }

    def identifier(self, subject: Subject) -> str:
        return placeholder_for(self.config.placeholder_token, subject.name)

    def _train_and_save(
        self, base: Components, subject: Subject, weights_dir: Path
    ) -> tuple[str, TrainingData, TrainResult]:
        import torch

        from dreambench.dataset.images import load_image
        from dreambench.reference_impl.dreambooth_trainer import TrainingData, train_dreambooth
        from dreambench.reference_impl.latent_cache import encode_images

        config = self.config
        placeholder = self.identifier(subject)
        token_id = add_placeholder_token(base, placeholder, subject.class_noun)
        resolution = require_sampler(self.sampler, self.name).resolution  # train at the protocol's size
        instance = encode_images(
            base.vae, [load_image(p) for p in subject.image_paths], resolution, self.device
        )
        prompts = tuple(template.format(placeholder) for template in OBJECT_TEMPLATES)
        data = TrainingData(instance=instance, instance_prompt=prompts[0], instance_prompts=prompts)

        embeddings = base.text_encoder.get_input_embeddings().weight
        original = embeddings.detach().clone()

        def keep_other_tokens(step: int) -> None:
            # AdamW (weight decay included) touched every row; only the placeholder may change.
            with torch.no_grad():
                embeddings[:token_id] = original[:token_id]
                embeddings[token_id + 1 :] = original[token_id + 1 :]

        embeddings.requires_grad_(True)
        result = train_dreambooth(
            base,
            data,
            config,
            self.device,
            self.seed,
            subject_name=subject.name,
            trainable=[embeddings],
            after_step=keep_other_tokens,
            # Gradients must reach the embedding through the text encoder at every step.
            train_text_encoder=True,
        )
        save_learned_embeds(weights_dir / LEARNED_EMBEDS_FILE, placeholder, embeddings[token_id])
        return placeholder, data, result

    def _load_trained(self, workdir: Path) -> Components:
        from dreambench.reference_impl.base_model import quiet_loading
        from dreambench.reference_impl.dreambooth import WEIGHTS_DIR

        base = load_base_model(self.config.base_model, self.config.base_revision, self.device)
        placeholder = read_done(workdir)["identifier"]
        with quiet_loading():
            # Stock diffusers loading; it extends base.tokenizer and base.text_encoder in place.
            base.pipeline().load_textual_inversion(
                str(workdir / WEIGHTS_DIR / LEARNED_EMBEDS_FILE), token=placeholder
            )
        return base

    def estimated_disk_bytes(self, subject: Subject, n_images: int) -> int:
        """Bytes of ``learned_embeds.safetensors``: one fp32 vector of the text encoder's width + header."""
        import json

        from dreambench.reference_impl.base_model import locate_base_model

        try:
            folder, _ = locate_base_model(self.config.base_model, self.config.base_revision)
            width = int(json.loads((folder / "text_encoder" / "config.json").read_text())["hidden_size"])
        except (BenchError, OSError, KeyError):
            width = _SD15_TEXT_WIDTH
        return 4 * width + 128


def add_placeholder_token(base: Components, placeholder: str, initializer: str) -> int:
    """Add ``placeholder`` to ``base``'s tokenizer and text encoder; return its token id.

    Its embedding starts as the mean embedding of ``initializer``'s tokens (the class noun).
    """
    import torch

    init_ids = base.tokenizer(initializer, add_special_tokens=False).input_ids
    if not init_ids:
        raise BenchError(f"textual-inversion: class noun {initializer!r} has no tokens to initialise from")
    if base.tokenizer.add_tokens(placeholder) != 1:
        raise BenchError(
            f"textual-inversion: placeholder {placeholder!r} is already a token of the base model's tokenizer; "
            "choose another placeholder_token"
        )
    token_id = base.tokenizer.convert_tokens_to_ids(placeholder)
    # mean_resizing=False: the new row is set right below, so skip transformers' random init.
    base.text_encoder.resize_token_embeddings(len(base.tokenizer), mean_resizing=False)
    weight = base.text_encoder.get_input_embeddings().weight
    with torch.no_grad():
        weight[token_id] = weight[init_ids].mean(dim=0)
    return token_id


def save_learned_embeds(path: Path, placeholder: str, embedding: torch.Tensor) -> None:
    """Write ``{placeholder: embedding[None]}`` as safetensors (diffusers' TI format), atomically."""
    from safetensors.torch import save

    tensor = embedding.detach().reshape(1, -1).to("cpu", copy=True).contiguous()
    atomic_write_bytes(Path(path), save({placeholder: tensor}, metadata={"format": "pt"}))
