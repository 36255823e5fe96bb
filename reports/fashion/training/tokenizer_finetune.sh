# Issue 11: sharpen the staged 32-bit tokenizer's decoder (rFID-10k 6.73 > 5) without touching
# its codes: encoder and code projection frozen, thresholded codes (what the generator learns),
# a GAN phase from the start (adaptive weight), the same perceptual term as before. NAME picks a
# candidate; selection is on fashion-mnist:val (tokenizer_select.py), never on test.
cd /work/main; . .venv/bin/activate
set -e
NAME=${NAME:-gan}
case $NAME in
  gan) EXTRA="--disc-start 0" ;;
  nogan) EXTRA="--disc-start 1000000000" ;;
  *) echo "NAME must be gan or nogan" >&2; exit 2 ;;
esac
bigr train-tokenizer --data fashion-mnist:fit --eval-data fashion-mnist:val --preset bae-fashion \
  --set code_bits=32 --set res_blocks=2 --init models/staged/tokenizer32 --freeze-encoder \
  --codes threshold --out /work/runs/tokft_$NAME --steps 3000 --batch-size 32 --lr 1e-4 \
  --warmup 100 --lr-schedule cosine --min-lr 1e-6 --perceptual-weight 0.1 \
  --perceptual-resolution 64 --perceptual-images 8 $EXTRA --eval-every 500 --eval-images 256 \
  --checkpoint-every 500 --export-weights raw --log-every 50 --resume "$@"
