# The training variants of issue 12 (paper Table 2, Table 4 and the plain-BCE question): the
# generator's exact command (generator_run.sh: same codes, steps, batch, schedule, seed) with
# one change each. VARIANT = x0 | bce | uncond; resumable (--resume). On this project's 2-core
# CPU each takes as long as the generator (~11 h); on a GPU machine, minutes.
#   bash reports/fashion/training/variants_run.sh x0
# Then: bigr report --variant x0=/work/runs/variant-x0/model --variant ... (sections variants,
# probe; the claims table reads both).
# An equal budget for a fraction of the cost: `--stop-at 3500` stops each variant at step 3,500
# on the same 15,000-step schedule (resume later to go on), and the generator's own run at that
# step is its base: gen32's EMA at 3,500 is commit a1ea6e4 (the run was uninterrupted up to
# there: its LR matches the schedule at every logged step; its one warm start came at 4,210):
#   mkdir -p /work/runs/gen32-3500 && for f in config.json model.safetensors; do
#     git show a1ea6e4:models/staged/gen32/$f > /work/runs/gen32-3500/$f; done
#   bigr export /work/runs/variant-x0/model --out /work/runs/x0-3500 --dtype float16  # as the base
#   bigr report ... --variant flip@3500=/work/runs/gen32-3500 --variant-base flip@3500 \
#     --variant x0=/work/runs/x0-3500 ...
cd /work/main; . .venv/bin/activate
set -e
T=${T:-/work/main/models/staged/tokenizer32}
case "$1" in
  x0) change="--set head.predict_flip=false" ;;
  bce) change="--set head.predict_flip=false --set head.direct=true" ;;
  uncond) change="--set class_dropout=1" ;;
  *) echo "usage: $0 x0|bce|uncond [extra bigr train flags]" >&2; exit 2 ;;
esac
VARIANT=$1; shift
bigr tokenize --tokenizer $T --data fashion-mnist:fit --out /work/runs/codes32 --deterministic --flips --batch-size 256
bigr train --codes /work/runs/codes32 --preset bigr-fashion --set code_bits=32 $change \
  --out /work/runs/variant-$VARIANT --tokenizer $T --steps 15000 --batch-size 256 --lr 1e-3 \
  --warmup 300 --lr-schedule cosine --min-lr 1e-5 --ema-decay 0.999 --checkpoint-every 250 \
  --log-every 25 --per-sample-mask --precision fp32 --compile --resume "$@"
