#!/usr/bin/env bash
# For a session lent a GPU machine (the device tool runs this from the repo root): images/s of
# `bigr-l-d24` (random weights, the release's settings: 20 steps, 100 head steps, guidance 3),
# bigr's default path and the embedded model's named recipes (`fast`, `turbo`: kept keys and
# values between refreshes, `refined`: late revision) against the release's algorithm,
# bf16 and fp32, eager, compiled and compiled with CUDA graphs (torch.compile's
# reduce-overhead mode; compilation untimed), at batch 16 and 64. Needs only torch, numpy,
# scipy, safetensors, tqdm and Pillow (the device image has them); the package is used from
# src/. One JSON per configuration and a summary table land in $OUT (default ./bench-gpu).
# Try it on a CPU first:
#   DEVICE=cpu PRESET=bigr-tiny BATCHES=2 MODES="eager compile" bash scripts/gpu_bench.sh
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
out=${OUT:-bench-gpu}
mkdir -p "$out"
device=${DEVICE:-cuda} preset=${PRESET:-bigr-l-d24}
(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true) > "$out/gpu.txt" 2>&1
py=${PYTHON:-python3}
paths=${PATHS:-default,release,recipe-fast,recipe-turbo,recipe-refined}
for batch in ${BATCHES:-16 64}; do
  for mode in ${MODES:-eager compile reduce-overhead}; do
    case $mode in
      eager) flags="" ;;
      compile) flags="--compile" ;;
      *) flags="--compile --compile-mode $mode" ;;
    esac
    for dtype in bfloat16 float32; do
      name=sample_b${batch}_${dtype}_${mode}
      # shellcheck disable=SC2086
      timeout "${LIMIT:-150}" "$py" -m bigr bench sample --preset "$preset" --device "$device" \
        --dtype "$dtype" $flags --batch "$batch" --paths "$paths" \
        --repeats 2 --json > "$out/$name.json" 2> "$out/$name.err" \
        || echo "$name: failed or timed out" >&2
    done
  done
done
"$py" - "$out" <<'PYEOF'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
rows = []
for f in sorted(out.glob("sample_*.json")):
    try:
        r = json.loads(f.read_text())
    except (ValueError, OSError):
        continue
    p = r["paths"]
    names = [n for n in p if n != "release"]
    if not rows:
        rows = [
            "| config | release img/s | "
            + " | ".join(f"{n} img/s | {n} vs release" for n in names)
            + " | matmul GFLOP/s |",
            "|---|---|" + "---|---|" * len(names) + "---|",
        ]
    rel = p["release"]["seconds_per_image"]
    cells = " | ".join(
        f"{p[n]['images_per_second']:.2f} | {rel / p[n]['seconds_per_image']:.2f}x" for n in names
    )
    rows.append(
        f"| {f.stem} | {p['release']['images_per_second']:.2f} | {cells} | "
        f"{r['matmul_gflops']:.0f} |"
    )
(out / "summary.md").write_text("\n".join(rows) + "\n")
print("\n".join(rows))
PYEOF
