cd /work/main; . .venv/bin/activate
bigr train-tokenizer --data fashion-mnist:fit --eval-data fashion-mnist:val --preset bae-fashion \
  --set code_bits=32 --set res_blocks=2 --out /work/runs/tok32 --steps 8000 --batch-size 32 \
  --lr 1e-3 --warmup 300 --lr-schedule cosine --min-lr 1e-5 \
  --perceptual-weight 0.1 --perceptual-resolution 64 --perceptual-start 4800 --perceptual-images 8 \
  --disc-start 1000000000 --eval-every 500 --eval-images 256 --checkpoint-every 500 --export-weights raw --log-every 50 "$@"
