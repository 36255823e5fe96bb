#!/usr/bin/env bash
# Issue 13 item 5, for a session lent a GPU machine (the device tool runs this from the repo
# root): images/s of `bigr-l-d24` (random weights, the release's settings: 20 steps, 100 head
# steps, guidance 3), bigr's default path against the release's algorithm, bf16 and fp32, with
# and without torch.compile of the backbone (compilation untimed). Needs only torch, numpy,
# scipy, safetensors, tqdm and Pillow (the device image has them); the package is used from
# src/. One JSON per configuration and a summary table land in $OUT (default ./bench-gpu).
# Try it on a CPU first: DEVICE=cpu PRESET=bigr-tiny BATCH=2 bash scripts/gpu_bench.sh
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
out=${OUT:-bench-gpu}
mkdir -p "$out"
device=${DEVICE:-cuda} preset=${PRESET:-bigr-l-d24}
(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true) > "$out/gpu.txt" 2>&1
for compile in "" --compile; do
  for dtype in bfloat16 float32; do
    name=sample_${dtype}${compile:+_compile}
    timeout "${LIMIT:-150}" python3 -m bigr bench sample --preset "$preset" --device "$device" \
      --dtype "$dtype" $compile --batch "${BATCH:-32}" --paths default,release --repeats 2 \
      --json > "$out/$name.json" 2> "$out/$name.err" || echo "$name: failed or timed out" >&2
  done
done
python3 - "$out" <<'PYEOF'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
rows = ["| config | default img/s | release img/s | speedup | matmul GFLOP/s |", "|---|---|---|---|---|"]
for f in sorted(out.glob("sample_*.json")):
    try:
        r = json.loads(f.read_text())
    except (ValueError, OSError):
        continue
    p = r["paths"]
    rows.append(
        f"| {f.stem} | {p['default']['images_per_second']:.2f} | "
        f"{p['release']['images_per_second']:.2f} | {r['speedup_vs_release']:.2f}x | "
        f"{r['matmul_gflops']:.0f} |"
    )
(out / "summary.md").write_text("\n".join(rows) + "\n")
print("\n".join(rows))
PYEOF
