# One point of the generator's FID curve (issue 11): the staged EMA weights sampled with a fixed
# recipe (entropy order, 12 steps, 25 head steps, guidance 2, Gumbel 0.2, seed 0), decoded by
# tokenizer32, FID-2k against the first 2,000 images of fashion-mnist:val (never the test
# split); M=DIR scores another export (e.g. an earlier staged step taken from git). Keeps one
# row per step in gen32_fid_val2000.jsonl and replots gen32_fid_val2000.png. ~20 min sampling
# + ~5 min Inception here (+5 min once for the reference, cached in /work/runs/val2000.npz, and
# +5 min once for the real-data floor at the same n: fit[:2000] vs val[:2000], drawn on the plot).
cd /work/main; . .venv/bin/activate
set -e
M=${M:-src/bigr/assets/fashion/model} T=models/staged/tokenizer32 REF=/work/runs/val2000.npz
STEP=$(python -c "import json; print(json.load(open('$M/config.json'))['extra']['trained_steps'])")
# keyed by the weights, so another export at the same step never reuses these samples
OUT=/work/runs/genfid_${STEP}_$(sha256sum $M/model.safetensors | cut -c1-12)
FLOOR=reports/fashion/training/gen32_fid_val2000_floor.json
if [ ! -f $FLOOR ]; then
  python - <<'PY'
import numpy as np
from bigr.evaluation.report.context import real_images
from bigr.images import to_uint8
images, labels = real_images("fashion-mnist:fit", 2000, 32)
np.savez("/work/runs/fit2000.npz", arr_0=to_uint8(images).permute(0, 2, 3, 1).numpy(),
         labels=labels.numpy())
PY
  bigr fid /work/runs/fit2000.npz --ref fashion-mnist:val --ref-num 2000 --ref-stats $REF --out $FLOOR
fi
bigr sample-fid --model $M --tokenizer $T --out $OUT --num 2000 --batch-size 100 --order entropy \
  --steps 12 --head-steps 25 --guidance 2 --gumbel 0.2 --seed 0 --compile
bigr fid $OUT --ref fashion-mnist:val --ref-num 2000 --ref-stats $REF --out $OUT/fid.json
python - "$STEP" "$OUT/fid.json" "$FLOOR" <<'PY'
import json, sys
from pathlib import Path
from bigr.plots import plot_curves
row = {"step": int(sys.argv[1]), **json.load(open(sys.argv[2]))}
row["recipe"] = "entropy 12x25 guidance 2 gumbel 0.2 seed 0"
log = Path("reports/fashion/training/gen32_fid_val2000.jsonl")
rows = [json.loads(r) for r in log.read_text().splitlines() if r.strip()] if log.is_file() else []
rows = sorted([r for r in rows if r["step"] != row["step"]] + [row], key=lambda r: r["step"])
log.write_text("".join(json.dumps(r) + "\n" for r in rows))
steps = [r["step"] for r in rows]
floor = json.load(open(sys.argv[3]))["fid"]
plot_curves(
    log.with_suffix(".png"),
    {
        "FID-2k vs fashion-mnist:val": (steps, [r["fid"] for r in rows]),
        "real data (fit[:2000])": (steps, [floor] * len(steps)),
    },
    title="generator EMA, entropy 12x25, guidance 2, Gumbel 0.2",
    ylabel="FID-2k",
    markers=True,
)
print(row)
PY
