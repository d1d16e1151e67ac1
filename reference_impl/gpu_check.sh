#!/usr/bin/env bash
# The GPU measurement in one command (docs/PERFORMANCE.md, "GPU"): on a machine with one CUDA GPU,
#
#     reference_impl/gpu_check.sh OUT_DIR
#
# 1. runs the like-for-like benchmark at SD 1.5 size (reference_impl/gpu_benchmark.py) with its
#    defaults -> OUT_DIR/gpu_benchmark.json (+ the printed table in gpu_benchmark.txt);
# 2. runs `bench run` with the dreambooth method on 2 subjects (dog, cat2) with the paper preset's
#    steps on random:sd15 (SD 1.5's architecture, random weights: nothing is downloaded) and the
#    smoke metric preset (real-size DINO / CLIP with random weights) -> OUT_DIR/run.json (results.json,
#    with the per-stage cost table) and OUT_DIR/runs/;
# 3. records the card, driver and library versions -> OUT_DIR/env.json, and each stage's wall
#    time -> OUT_DIR/wall_seconds.json.
#
# Everything it measures is uncalibrated (random weights): timings, not image quality.
# Environment: DREAMBENCH_DATA (the google/dreambooth clone; required), PYTHON (default: python),
# DREAMBENCH_CACHE (where random:sd15 is built once, ~4.3 GB), CLASS_IMAGES (class-prior images
# per class, default the paper preset's 1000; fewer shortens step 2 and keeps per-image timings),
# BENCHMARK_ARGS (extra gpu_benchmark options), BENCHMARK_TIMEOUT / RUN_TIMEOUT (seconds, default
# 420 / 900).
set -euo pipefail

out="${1:?usage: reference_impl/gpu_check.sh OUT_DIR}"
python="${PYTHON:-python}"
: "${DREAMBENCH_DATA:?set DREAMBENCH_DATA to the google/dreambooth clone}"
class_images="${CLASS_IMAGES:-1000}"
mkdir -p "$out"
export HF_HUB_OFFLINE=1

"$python" - "$out/env.json" <<'PY'
import json, subprocess, sys
import diffusers, torch, transformers
info = {
    "card": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    "cuda": torch.version.cuda,
    "torch": torch.__version__,
    "diffusers": diffusers.__version__,
    "transformers": transformers.__version__,
}
try:
    info["nvidia_smi"] = subprocess.run(
        ["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm", "--format=csv,noheader"],
        capture_output=True, text=True, check=False,
    ).stdout.strip()
except OSError:
    info["nvidia_smi"] = None
json.dump(info, open(sys.argv[1], "w"), indent=2)
PY

started=$SECONDS
# shellcheck disable=SC2086  # BENCHMARK_ARGS is a list of options
timeout "${BENCHMARK_TIMEOUT:-420}" "$python" -m dreambench.reference_impl.gpu_benchmark \
    --size sd15 --device cuda --json "$out/gpu_benchmark.json" ${BENCHMARK_ARGS:-} \
    | tee "$out/gpu_benchmark.txt"
benchmark_s=$((SECONDS - started))

started=$SECONDS
status=0
timeout "${RUN_TIMEOUT:-900}" "$python" -m dreambench.cli run --method dreambooth --subjects dog,cat2 \
    --preset smoke --method-preset paper \
    --method-args "base_model=random:sd15,num_class_images=$class_images" \
    --device cuda --data "$DREAMBENCH_DATA" --out "$out/runs" --json > "$out/run.json" || status=$?
run_s=$((SECONDS - started))

printf '{"gpu_benchmark": %d, "bench_run": %d, "bench_run_exit_code": %d}\n' \
    "$benchmark_s" "$run_s" "$status" > "$out/wall_seconds.json"
cat "$out/wall_seconds.json"
exit "$status"
