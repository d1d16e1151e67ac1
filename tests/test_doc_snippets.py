"""Users' tools open what we write: the full DreamBooth output is a pipeline folder stock diffusers
loads, and every loading snippet in docs/DREAMBOOTH.md reproduces the project's image byte for
byte on the tiny model."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import torch
from test_dreambooth import make_subject

from dreambench.dataset.subject import Subject
from dreambench.reference_impl.base_model import locate_base_model
from dreambench.reference_impl.dreambooth import WEIGHTS_DIR, DreamBooth, read_done
from dreambench.reference_impl.lora import DreamBoothLoRA
from dreambench.reference_impl.render import SamplerSettings
from dreambench.reference_impl.textual_inversion import TextualInversion
from dreambench.reference_impl.tiny_model import TINY_RESOLUTION

DOC = Path(__file__).resolve().parents[1] / "docs" / "DREAMBOOTH.md"
METHODS: dict[str, type] = {
    "dreambooth": DreamBooth,
    "dreambooth-lora": DreamBoothLoRA,
    "textual-inversion": TextualInversion,
}
# The smoke render protocol with 2 steps; one image per pipeline call, so the project's image and
# the snippet's come from the same batch shape (docs/DREAMBOOTH.md, "Reproducing a run's image").
SAMPLER = SamplerSettings(steps=2, resolution=TINY_RESOLUTION)
SEED = 4127213577193066045


def loading_snippets() -> dict[str, tuple[int, str]]:
    """Method name -> (line, code) of every python block of the doc that loads a run's weights."""
    text = DOC.read_text(encoding="utf-8")
    found: dict[str, tuple[int, str]] = {}
    for match in re.finditer(r"```python\n(.*?)```", text, flags=re.S):
        code = match.group(1)
        run = re.search(r'"runs/([a-z-]+?)-dreambooth-<hash>/subjects/dog/prepare/weights', code)
        if "prepare/weights" not in code:
            continue
        assert run is not None and run.group(1) not in found, code
        found[run.group(1)] = (text[: match.start()].count("\n") + 2, code)
    return found


SNIPPETS = loading_snippets()


def substitute(code: str, values: dict[str, Any]) -> str:
    """Replace the snippet's settings lines (``name = ...`` at the start of a line) with ``values``."""
    for names, value in values.items():
        pattern = re.compile(rf"^{re.escape(names)} = .*$", flags=re.M)
        line = f"{names} = {value}"
        code, count = pattern.subn(lambda _, line=line: line, code)
        assert count == 1, f"the snippet has no single `{names} = ...` line"
    return code


def png(image: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def dog(dreambench_data: Path) -> Subject:
    return make_subject(dreambench_data, "dog", "dog", ["00.jpg", "01.jpg"])


def smoke_base(method_name: str) -> Path:
    """The folder of the base model the method's smoke preset trains on."""
    return locate_base_model(METHODS[method_name].PRESETS["smoke"].base_model)[0]


def prepared(method_name: str, subject: Subject, workdir: Path, prior: bool = False) -> Any:
    """The method trained 2 steps on the tiny model (class priors only with ``prior``: loading is
    what these tests are about), its weights kept."""
    cls = METHODS[method_name]
    fields = {f.name for f in dataclasses.fields(cls.Config)}
    fast: dict[str, Any] = {"train_steps": 2, "render_batch_size": 1}
    if "prior_preservation" in fields:
        fast |= {"prior_preservation": prior, "num_class_images": 2}
    method = cls(dataclasses.replace(cls.PRESETS["smoke"], **fast), device="cpu", sampler=SAMPLER, keep_weights=True)
    method.prepare(subject, workdir)
    return method


def test_doc_has_a_loading_snippet_per_method() -> None:
    assert set(SNIPPETS) == set(METHODS)


@pytest.mark.parametrize("method_name", sorted(METHODS))
def test_loading_snippet_reproduces_the_projects_image(
    method_name: str, dog: Subject, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workdir = tmp_path / "subjects" / "dog" / "prepare"
    method = prepared(method_name, dog, workdir)
    identifier = read_done(workdir)["identifier"]
    prompt = f"a {identifier} dog in the jungle"
    ours = png(method.generate(dog, workdir, [prompt], [SEED])[0])
    method.release()  # keep_weights: the folder stays, as after `bench run --keep-weights`

    line, code = SNIPPETS[method_name]
    settings = {
        "weights": repr(str(workdir / WEIGHTS_DIR)),
        "prompt, seed": f"{prompt!r}, {SEED}",
        "steps, guidance, size": f"{SAMPLER.steps}, {SAMPLER.guidance}, {SAMPLER.resolution}",
        "device": '"cpu"',
    }
    if method_name != "dreambooth":  # the full DreamBooth folder needs no base model
        settings["base, revision"] = f"{str(smoke_base(method_name))!r}, None"
    code = substitute(code, settings)
    monkeypatch.chdir(tmp_path)  # the DreamBooth snippet saves dog.png
    namespace: dict[str, Any] = {}
    exec(compile(code, f"{DOC}:{line}", "exec"), namespace)
    assert png(namespace["image"]) == ours


def test_full_dreambooth_output_is_a_pipeline_folder_with_linked_components(
    dog: Subject, tmp_path: Path
) -> None:
    from diffusers import StableDiffusionPipeline

    workdir = tmp_path / "prepare"
    method = prepared("dreambooth", dog, workdir, prior=True)
    weights = workdir / WEIGHTS_DIR
    base = smoke_base("dreambooth")
    index = json.loads((weights / "model_index.json").read_text())
    assert index["unet"] == ["diffusers", "UNet2DConditionModel"] and index["safety_checker"] == [None, None]

    # Stock diffusers loads the folder as it is, with the fine-tuned UNet.
    pipe = StableDiffusionPipeline.from_pretrained(weights)
    trained = method._get_trained_model(workdir).unet.state_dict()
    loaded = pipe.unet.state_dict()
    assert trained.keys() == loaded.keys() and all(torch.equal(trained[k], loaded[k]) for k in trained)
    base_unet = StableDiffusionPipeline.from_pretrained(base).unet.state_dict()
    assert not all(torch.equal(base_unet[k], loaded[k]) for k in loaded)

    # Unchanged components are links to the base model's files, never copies.
    for component in ("vae", "text_encoder", "tokenizer", "scheduler"):
        files = [p for p in (weights / component).rglob("*") if not p.is_dir()]
        assert files, component
        for path in files:
            original = base / component / path.relative_to(weights / component)
            linked = path.is_symlink() and path.resolve() == original.resolve()
            hard = os.stat(path).st_ino == os.stat(original.resolve()).st_ino
            assert linked or hard, path
    assert not (weights / "unet" / "config.json").is_symlink()
    assert os.stat(weights / "unet" / "config.json").st_ino != os.stat(base / "unet" / "config.json").st_ino
