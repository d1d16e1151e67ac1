"""Scoring precision and the machine: bf16 detection (stubbed CPU flags, both answers), `auto`,
and the warning before the work when bf16 is asked for where it is emulated (through the CLI)."""

from __future__ import annotations

import io
import json
import platform
import sys
from pathlib import Path

import pytest
from PIL import Image

from dreambench.cli import main
from dreambench.errors import BenchError
from dreambench.metrics import precision
from dreambench.metrics.precision import (
    cpu_bf16_support,
    cpu_flags,
    precision_warning,
    resolve_precision,
)
from dreambench.metrics.scorer import Scorer

ZEN3 = frozenset("fpu sse4_2 avx avx2 fma f16c bmi2".split())  # AVX2, no AVX-512: bf16 emulated
ZEN4 = ZEN3 | {"avx512f", "avx512bw", "avx512vl", "avx512_bf16"}
SAPPHIRE_RAPIDS = ZEN3 | {"avx512f", "avx512bw", "amx_tile", "amx_bf16"}
ONE_PROMPT = {
    "name": "one",
    "version": "t1",
    "object": ["a {0} {1} on a table"],
    "live": ["a {0} {1} in the snow"],
}


# -- detection ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "arch", "environ", "native"),
    [
        (ZEN4, "x86_64", {}, True),
        (SAPPHIRE_RAPIDS, "x86_64", {}, True),
        (ZEN3, "x86_64", {}, False),
        # bf16 units, but oneDNN (the matmuls) kept from them; ATen's own level does not decide.
        (ZEN4, "x86_64", {"ONEDNN_MAX_CPU_ISA": "AVX2"}, False),
        (ZEN4, "x86_64", {"DNNL_MAX_CPU_ISA": "avx512_core"}, False),
        (ZEN4, "x86_64", {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"}, True),
        (ZEN4, "x86_64", {"ATEN_CPU_CAPABILITY": "avx2"}, True),
        (frozenset({"fp", "asimd", "bf16", "i8mm"}), "aarch64", {}, True),
        (frozenset({"fp", "asimd"}), "aarch64", {}, False),
        (frozenset(), "riscv64", {}, False),
    ],
)
def test_cpu_bf16_support_from_flags(
    flags: frozenset[str], arch: str, environ: dict[str, str], native: bool
) -> None:
    support = cpu_bf16_support(flags=flags, arch=arch, environ=environ)
    assert support.native is native
    assert ("emulated" in support.reason) is (not native)


def test_cpu_flags_read_from_cpuinfo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Test CPU 9000\nflags\t\t: fpu avx2 avx512_bf16\n\n")
    monkeypatch.setattr(precision, "_CPUINFO", cpuinfo)
    assert cpu_flags() == frozenset({"fpu", "avx2", "avx512_bf16"})
    assert precision.cpu_model() == "Test CPU 9000"
    monkeypatch.setattr(precision, "_CPUINFO", tmp_path / "absent")
    assert cpu_flags() is None


@pytest.fixture(params=["native", "emulated"])
def machine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """This process on a stubbed x86 CPU: with bf16 units (native) or AVX2 only (emulated)."""
    native = request.param == "native"
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(precision, "cpu_flags", lambda: ZEN4 if native else ZEN3)
    monkeypatch.setattr(precision, "cpu_model", lambda: "Stub CPU")
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    return native


def test_auto_resolves_by_the_machine(machine: bool) -> None:
    assert resolve_precision("auto", "cpu") == ("bf16" if machine else "fp32")
    assert resolve_precision("fp32", "cpu") == "fp32" and resolve_precision("bf16", "cpu") == "bf16"
    warning = precision_warning("bf16", "cpu")
    if machine:
        assert warning is None
    else:
        assert warning is not None and "\n" not in warning
        assert (
            "Stub CPU" in warning and "slower than fp32" in warning and "--scoring-precision fp32" in warning
        )
    assert precision_warning("fp32", "cpu") is None


def test_unknown_precision_names_the_choices() -> None:
    with pytest.raises(BenchError, match="'fp16'; valid: fp32, bf16, auto"):
        resolve_precision("fp16", "cpu")


def test_auto_scorer_records_the_resolved_precision(machine: bool) -> None:
    """The identity holds the precision that runs, never "auto": a worker rebuilding the Scorer
    from it (as SubjectWorker does) gets the same identity, and auto on a native machine is the
    same result as an explicit bf16."""
    auto = Scorer("smoke", device="cpu", precision="auto")
    resolved = "bf16" if machine else "fp32"
    assert (auto.requested_precision, auto.precision) == ("auto", resolved)
    assert auto.identity()["precision"] == resolved
    rebuilt = Scorer("smoke", device="cpu", precision=auto.identity()["precision"])
    assert rebuilt.identity_key() == auto.identity_key()
    assert Scorer("smoke", device="cpu", precision=resolved).identity_key() == auto.identity_key()


# -- through the CLI ------------------------------------------------------------------------------


class _StderrWatch(io.StringIO):
    """stderr that notes, per write, whether the run folder existed yet."""

    def __init__(self, out: Path) -> None:
        super().__init__()
        self.out = out
        self.writes: list[tuple[str, bool]] = []

    def write(self, text: str) -> int:
        self.writes.append((text, self.out.exists()))
        return super().write(text)


def _eval(images: Path, data: Path, out: Path, prompts: Path, *extra: str) -> int:
    return main(
        [
            "eval",
            str(images),
            "--prompts",
            str(prompts),
            "--images-per-prompt",
            "1",
            "--preset",
            "smoke",
            "--subjects",
            "vase",
            "--data",
            str(data),
            "--out",
            str(out),
            "--quiet",
            *extra,
        ]
    )


@pytest.fixture()
def job(tmp_path: Path) -> tuple[Path, Path]:
    images = tmp_path / "mine" / "vase"
    images.mkdir(parents=True)
    Image.new("RGB", (48, 48), (30, 90, 160)).save(images / "0-0.png")
    prompts = tmp_path / "one.json"
    prompts.write_text(json.dumps(ONE_PROMPT))
    return images.parent, prompts


def test_bf16_where_emulated_warns_before_the_work_and_proceeds(
    machine: bool,
    job: tuple[Path, Path],
    dreambench_data: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`--scoring-precision bf16` on a CPU without bf16 units: one warning line on stderr (also
    with --quiet) before anything is written, then the run goes on, labelled bf16, its stamp
    saying bf16 was emulated. On a native CPU: no warning."""
    images, prompts = job
    out = tmp_path / "runs"
    stderr = _StderrWatch(out)
    monkeypatch.setattr(sys, "stderr", stderr)
    assert _eval(images, dreambench_data, out, prompts, "--scoring-precision", "bf16") == 0
    warnings = [(text, existed) for text, existed in stderr.writes if "--scoring-precision bf16" in text]
    if machine:
        assert warnings == []
    else:
        assert len(warnings) == 1 and warnings[0][1] is False  # printed before the run folder existed
        assert "Stub CPU" in warnings[0][0] and "--scoring-precision fp32 (or auto)" in warnings[0][0]
    (run_dir,) = out.iterdir()
    results = json.loads((run_dir / "results.json").read_text())
    assert results["scoring"]["precision"] == "bf16"
    assert results["stamp"]["device_bf16"]["native"] is machine
    assert json.loads((run_dir / "stamp.json").read_text())["device_bf16"] == results["stamp"]["device_bf16"]


def test_auto_is_the_same_result_as_the_precision_it_picks(
    job: tuple[Path, Path], dreambench_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`auto` resolves by the machine and lands in the run directory of the precision it picked
    (same identity, nothing recomputed); on the two kinds of CPU it picks different precisions,
    which are different results."""
    images, prompts = job
    out = tmp_path / "runs"
    runs = {}
    for kind, flags in (("emulated", ZEN3), ("native", ZEN4)):
        monkeypatch.setattr(platform, "machine", lambda: "x86_64")
        monkeypatch.setattr(precision, "cpu_flags", lambda flags=flags: flags)
        monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
        assert _eval(images, dreambench_data, out / kind, prompts, "--scoring-precision", "auto") == 0
        (run_dir,) = (out / kind).iterdir()
        runs[kind] = json.loads((run_dir / "results.json").read_text())
    assert runs["emulated"]["scoring"]["precision"] == "fp32"
    assert runs["native"]["scoring"]["precision"] == "bf16"
    assert runs["emulated"]["run"]["config_hash"] != runs["native"]["run"]["config_hash"]
    # The same identity as the explicit precision: the explicit run resumes auto's directory.
    for kind, explicit in (("emulated", "fp32"), ("native", "bf16")):
        assert _eval(images, dreambench_data, out / kind, prompts, "--scoring-precision", explicit) == 0
        (run_dir,) = (out / kind).iterdir()
        again = json.loads((run_dir / "results.json").read_text())
        assert again["run"]["config_hash"] == runs[kind]["run"]["config_hash"]
        assert again["subjects"]["vase"]["dino"] == runs[kind]["subjects"]["vase"]["dino"]


def test_unknown_precision_is_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["eval", "somewhere", "--scoring-precision", "fp16"])
    assert exc.value.code == 2
    assert "auto" in capsys.readouterr().err


def test_evaluate_takes_auto_and_warns_for_emulated_bf16(
    machine: bool,
    job: tuple[Path, Path],
    dreambench_data: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`dreambench.evaluate()` goes the same way as the CLI: auto resolved by the machine, and the
    warning for bf16 where it is emulated."""
    import dreambench

    images, prompts = job
    common = {
        "images_dir": images,
        "subjects": "vase",
        "preset": "smoke",
        "data": dreambench_data,
        "prompts": prompts,
        "images_per_prompt": 1,
        "progress": False,
    }
    auto = dreambench.evaluate(**common, out=tmp_path / "auto", scoring_precision="auto")
    assert auto["scoring"]["precision"] == ("bf16" if machine else "fp32")
    assert "--scoring-precision bf16" not in capsys.readouterr().err
    bf16 = dreambench.evaluate(**common, out=tmp_path / "bf16", scoring_precision="bf16")
    assert bf16["scoring"]["precision"] == "bf16"
    assert ("--scoring-precision bf16" in capsys.readouterr().err) is (not machine)
