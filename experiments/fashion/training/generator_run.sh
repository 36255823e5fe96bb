# Generator for issue 11: tokenize the fit split (deterministic codes + flips), then train
# (15,000 steps over several sessions; --resume continues, or add --init src/bigr/assets/fashion/model
# if the run folder is gone).
cd /work/main; . .venv/bin/activate
set -e
T=${T:-/work/main/models/staged/tokenizer32}
# resumable: finished shards are skipped
  bigr tokenize --tokenizer $T --data fashion-mnist:fit --out /work/runs/codes32 --deterministic --flips --batch-size 256
bigr train --codes /work/runs/codes32 --preset bigr-fashion --set code_bits=32 --out /work/runs/gen32 \
  --tokenizer $T --sample-classes 0,1,2,3,4,5,6,7,8,9 --steps 15000 --batch-size 256 --lr 1e-3 \
  --warmup 300 --lr-schedule cosine --min-lr 1e-5 --ema-decay 0.999 --checkpoint-every 250 \
  --sample-every 2000 --log-every 25 --per-sample-mask --precision fp32 --compile --resume "$@"
