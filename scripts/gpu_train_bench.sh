#!/usr/bin/env bash
# For a session lent a GPU machine (the device tool runs this from the repo root): the training
# step of `bigr-l-d24` (random weights, random codes) as bigr runs it and as the release's
# prepared-data script runs it, each eager and compiled, fp32 and bf16 autocast, interleaved
# step by step in one run (`bigr bench train --variants`), then bigr's best step against the
# release's best. Needs only torch, numpy, scipy, safetensors, tqdm and Pillow; the package is
# used from src/. Output in $OUT (default ./bench-gpu-train): train.json, train.err, summary.md.
# Sized for a few minutes of an H100 (6 models of 336 M parameters with AdamW: about 33 GB).
# Try it on a CPU first:
#   DEVICE=cpu PRESET=bigr-tiny BATCH=4 bash scripts/gpu_train_bench.sh
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
out=${OUT:-bench-gpu-train}
mkdir -p "$out"
py=${PYTHON:-python3}
(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true) > "$out/gpu.txt" 2>&1
variants=${VARIANTS:-release_prepared-eager-bf16,release_prepared-compile-bf16,release_prepared-compile-fp32,eager-bf16,compile-bf16,compile-fp32}
timeout "${LIMIT:-420}" "$py" -m bigr bench train --preset "${PRESET:-bigr-l-d24}" \
  --device "${DEVICE:-cuda}" --batch "${BATCH:-32}" --variants "$variants" --json \
  > "$out/train.json" 2> "$out/train.err" || echo "bench train: failed or timed out" >&2
"$py" - "$out" <<'PYEOF'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
try:
    r = json.loads((out / "train.json").read_text())
except (ValueError, OSError) as err:
    sys.exit(f"no result: {err}")
v = r["variants"]
rows = [
    f"device: {r['machine'].get('gpu', r['machine']['processor'])}; preset {r['preset']}, "
    f"batch {r['settings']['batch']}; matmul {r['matmul_gflops']:.0f} GFLOP/s",
    "",
    "| variant | s / step | tokens / s | loss after |",
    "|---|---|---|---|",
]
rows += [
    f"| {n} | {x['seconds_per_step']:.4f} | {x['tokens_per_second']:,.0f} | {x['loss_after']:.6f} |"
    for n, x in v.items()
]
def best(release: bool) -> tuple[str, float]:
    side = {n: x["seconds_per_step"] for n, x in v.items() if n.startswith("release") == release}
    name = min(side, key=side.get)
    return name, side[name]
(bn, bs), (rn, rs) = best(False), best(True)
rows += ["", f"bigr's best ({bn}) vs the release's best ({rn}): {rs / bs:.2f}x"]
(out / "summary.md").write_text("\n".join(rows) + "\n")
print("\n".join(rows))
PYEOF
