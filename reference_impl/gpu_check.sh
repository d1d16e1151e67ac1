#!/usr/bin/env bash
# The GPU measurement in one command (docs/PERFORMANCE.md, "GPU"): on a machine with one CUDA GPU,
#
#     reference_impl/gpu_check.sh OUT_DIR
#
# 1. records the card, driver and library versions -> OUT_DIR/env.json;
# 2. runs `bench run` at the paper protocol, as users run it: run preset `dreambooth` (512 px,
#    50 DDIM steps, guidance 7.5), the dreambooth method's `paper` hyperparameters on random:sd15
#    (SD 1.5's architecture, random weights: nothing is downloaded) and the smoke metric weights
#    (`--metric-preset smoke`: DINO / CLIP at their real sizes, random weights), on 2 subjects
#    (dog, cat2: two classes) -> OUT_DIR/run.json (results.json with its cost records) and
#    OUT_DIR/runs/. Sized to fit the time box, the only departures from the paper's work are
#    counts: CLASS_IMAGES class images per class (default 25, one render batch; paper 1,000),
#    TRAIN_STEPS steps per subject (default 200; paper 1,000) and IMAGES_PER_PROMPT (default 1;
#    paper 4). The counts change no per-item rate;
# 3. prints the run's per-stage table and the whole `paper` benchmark's time at its rates
#    (`bench cost`) -> OUT_DIR/cost.txt and OUT_DIR/cost.json;
# 4. runs the like-for-like benchmark at SD 1.5 size (reference_impl/gpu_benchmark.py, its
#    defaults plus BENCHMARK_ARGS) in the time left -> OUT_DIR/gpu_benchmark.json (+ .txt);
# 5. each step's wall time and exit code -> OUT_DIR/wall_seconds.json.
#
# Time box: the whole check fits one call of 8 minutes on an H100/H200 (TOTAL_BUDGET, default 450 s
# of it). Sized with the rows measured on an H200 on 2026-12-04 (docs/PERFORMANCE.md): building
# random:sd15 and loading it ~40 s, the scorer's load ~15 s; per subject class priors 25 images at
# ~2.5 images/s ~10 s, 200 train steps at 114 ms + a first step of ~8 s ~31 s, 25 renders at 50
# steps ~10 s, saving the fine-tuned UNet ~10 s: about 3 minutes for step 2 (RUN_TIMEOUT, default
# 240 s), the rest for step 4 (the benchmark alone took 173 s there with its rows of that day).
#
# Everything it measures is uncalibrated (random weights): timings, not image quality.
# Environment: DREAMBENCH_DATA (the google/dreambooth clone; required), PYTHON (default: python),
# DREAMBENCH_CACHE (where random:sd15 is built once, ~4.3 GB), CLASS_IMAGES, TRAIN_STEPS,
# IMAGES_PER_PROMPT, SUBJECTS (default dog,cat2), BASE_MODEL (default random:sd15), DEVICE (default
# cuda), RUN_ARGS (extra `bench run` options), BENCHMARK_ARGS (extra gpu_benchmark options),
# STEPS (default "run benchmark": which of steps 2-4 to do), TOTAL_BUDGET / RUN_TIMEOUT (seconds).
set -euo pipefail

out="${1:?usage: reference_impl/gpu_check.sh OUT_DIR}"
python="${PYTHON:-python}"
: "${DREAMBENCH_DATA:?set DREAMBENCH_DATA to the google/dreambooth clone}"
steps="${STEPS:-run benchmark}"
device="${DEVICE:-cuda}"
total_budget="${TOTAL_BUDGET:-450}"
mkdir -p "$out"
export HF_HUB_OFFLINE=1
check_started=$SECONDS

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

run_s=0; run_status=-1; cost_status=-1; benchmark_s=0; benchmark_status=-1
if [[ " $steps " == *" run "* ]]; then
    started=$SECONDS
    run_status=0
    # shellcheck disable=SC2086  # RUN_ARGS is a list of options
    timeout "${RUN_TIMEOUT:-240}" "$python" -m dreambench.cli run --method dreambooth \
        --subjects "${SUBJECTS:-dog,cat2}" --preset dreambooth --metric-preset smoke --method-preset paper \
        --method-args "base_model=${BASE_MODEL:-random:sd15},num_class_images=${CLASS_IMAGES:-25},train_steps=${TRAIN_STEPS:-200}" \
        --images-per-prompt "${IMAGES_PER_PROMPT:-1}" --device "$device" --data "$DREAMBENCH_DATA" \
        --out "$out/runs" --quiet --json ${RUN_ARGS:-} > "$out/run.json" || run_status=$?
    run_s=$((SECONDS - started))
    run_dir=$(ls -d "$out"/runs/dreambooth-*/ 2>/dev/null | head -n 1 || true)
    if [[ -n "$run_dir" && -f "$run_dir/results.json" ]]; then
        cost_status=0
        "$python" -m dreambench.cli cost "$run_dir" | tee "$out/cost.txt" || cost_status=$?
        "$python" -m dreambench.cli cost "$run_dir" --json > "$out/cost.json" || cost_status=$?
    fi
fi

if [[ " $steps " == *" benchmark "* ]]; then
    left=$((total_budget - (SECONDS - check_started)))
    if (( left < 60 )); then
        echo "gpu_check: ${left} s left of TOTAL_BUDGET=${total_budget}; benchmark skipped" >&2
    else
        started=$SECONDS
        benchmark_status=0
        # shellcheck disable=SC2086  # BENCHMARK_ARGS is a list of options
        timeout "$left" "$python" -m dreambench.reference_impl.gpu_benchmark \
            --size sd15 --device "$device" --json "$out/gpu_benchmark.json" ${BENCHMARK_ARGS:-} \
            > "$out/gpu_benchmark.txt" || benchmark_status=$?
        cat "$out/gpu_benchmark.txt"
        benchmark_s=$((SECONDS - started))
    fi
fi

printf '{"bench_run": %d, "bench_run_exit_code": %d, "bench_cost_exit_code": %d, "gpu_benchmark": %d, "gpu_benchmark_exit_code": %d}\n' \
    "$run_s" "$run_status" "$cost_status" "$benchmark_s" "$benchmark_status" > "$out/wall_seconds.json"
cat "$out/wall_seconds.json"
# Exit status: the first step that failed (-1 = not run).
for status in "$run_status" "$cost_status" "$benchmark_status"; do
    if (( status > 0 )); then exit "$status"; fi
done
