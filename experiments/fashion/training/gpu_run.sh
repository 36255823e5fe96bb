# Issue 11 on a lent GPU (one call of the device tool, ~9 min): two generators trained side by
# side on the same codes as the shipped one (tokenizer32's codes of fashion-mnist:fit + flips,
# copied to runs/codes32 and carried), each to a wall-clock budget, then 10,000 samples of
# each drawn there (the shipped recipe) and everything packed into $OUT:
#   A = the shipped architecture (bigr-fashion, 2.57 M), more steps at batch 512
#   B = wider and deeper (dim 192, 10 blocks, 6 heads), same head, batch 512
# Each run first calibrates (300 steps, compile included) to turn the budget into a step
# count, so its cosine schedule ends inside the budget. On a CPU, TRAIN_SECONDS=60
# DEVICE=cpu PRECISION=fp32 NUM=100 checks the script end to end in a few minutes.
set -u
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu_out} W=${WORK:-/tmp/gpu_work}
DEVICE=${DEVICE:-cuda} PRECISION=${PRECISION:-bf16} NUM=${NUM:-10000}
TRAIN_SECONDS=${TRAIN_SECONDS:-380}  # from the start of this script to the end of training
CAL=${CAL:-300} LOG=${LOG:-100} BATCH=${BATCH:-512} EXTRA=${EXTRA:-}  # smaller for a CPU check
T0=$SECONDS
mkdir -p "$OUT" "$W"
python3 -c "import torch; print(torch.__version__, torch.cuda.is_available() and torch.cuda.get_device_name())"
COMMON="--codes runs/codes32 --preset bigr-fashion --batch-size $BATCH --lr 1e-3 --warmup 300
  --lr-schedule cosine --min-lr 1e-5 --ema-decay 0.999 --per-sample-mask --precision $PRECISION
  --device $DEVICE --compile --log-every $LOG --checkpoint-every 2000 --sample-every 0"
declare -A SETS=([A]="" [B]="--set dim=192 --set depth=10 --set heads=6")

calibrate() {  # $1 = run name: seconds per step (after compile) and the compile overhead
  python3 -m bigr train $COMMON ${SETS[$1]} $EXTRA --out "$W/cal$1" --steps 100000 --stop-at $CAL \
    > "$OUT/cal$1.txt" 2>&1
  python3 - "$W/cal$1/log.jsonl" <<'PY'
import json, sys
rows = [(r["step"], r["seconds"]) for r in map(json.loads, open(sys.argv[1]))]
(s0, t0), (s1, t1) = rows[0], rows[-1]
per_step = (t1 - t0) / (s1 - s0)
print(per_step, t0 - s0 * per_step)
PY
}

train() {  # $1 = run name
  read -r PER OVERHEAD < <(calibrate "$1")
  if [ -z "${OVERHEAD:-}" ]; then echo "run $1: calibration failed" | tee -a "$OUT/plan.txt"; return; fi
  LEFT=$((TRAIN_SECONDS - (SECONDS - T0)))
  STEPS=$(python3 -c "print(max(300, int(($LEFT - 1.2 * $OVERHEAD) * 0.92 / $PER)))")
  echo "run $1: $PER s/step, compile ~$OVERHEAD s, $LEFT s left -> $STEPS steps" | tee -a "$OUT/plan.txt"
  python3 -m bigr train $COMMON ${SETS[$1]} $EXTRA --out "$W/run$1" --steps "$STEPS" > "$OUT/train$1.txt" 2>&1
  echo "run $1 trained: exit $? at $((SECONDS - T0)) s" | tee -a "$OUT/plan.txt"
}

train A & train B & wait

for R in A B; do
  python3 -m bigr export "$W/run$R/model" --out "$W/pack/model$R" --dtype float16 || continue
  cp "$W/run$R/log.jsonl" "$W/pack/log$R.jsonl"
  python3 -m bigr sample-fid --model "$W/pack/model$R" --tokenizer src/bigr/assets/fashion/tokenizer \
    --num "$NUM" --batch-size 1000 --shard-size 2000 --steps 16 --head-steps 25 --guidance 1.5 \
    --order random --gumbel 0 --seed 0 --device "$DEVICE" --out "$W/pack/samples$R" \
    > "$OUT/sample$R.txt" 2>&1
  echo "run $R sampled: exit $? at $((SECONDS - T0)) s" | tee -a "$OUT/plan.txt"
done
cp "$OUT"/*.txt "$W/pack/" 2>/dev/null
tar czf - -C "$W" pack | split -b 15M - "$OUT/pack.tgz."
rm -f "$OUT"/cal?.txt "$OUT"/train?.txt "$OUT"/sample?.txt  # in the pack; at most 8 files return
ls -la "$OUT"; cat "$OUT/plan.txt"
