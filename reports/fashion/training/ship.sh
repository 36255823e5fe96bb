# Issue 11's last steps, after the generator run has finished its 15,000 steps. Each step is
# resumable (cached points, sample shards, report sections) and can run in a later session:
#   bash reports/fashion/training/ship.sh STEP     STEP = export|tune|fast|install|fid|report
# Costs on this project's 2-core CPU (sampling at ~0.3 s/image for 12 x 25 steps eager, ~0.27
# with --compile; the FID Inception at ~7 images/s) are given per step. Nothing here reads the
# test split before `fid`: recipes are chosen on fashion-mnist:val (the last 5,000 training images).
cd /work/main; . .venv/bin/activate
set -e
# T: the decoder-fine-tuned tokenizer (same codes as tokenizer32, chosen on val: models/staged/README.md)
RUN=/work/runs/gen32 T=models/staged/tokenizer32ft A=src/bigr/assets/fashion S=/work/runs/ship
case "$1" in
  export)  # the EMA weights, float16 (seconds)
    bigr export $RUN/model --out $S/model --dtype float16 ;;
  tune)  # the recommended recipe: ~25 points x ~7 min = ~3 h. Wide in guidance and Gumbel:
    # at guidance 2, Gumbel 0.2 the run's samples are sharp but alike (FID-2k recall 0.34)
    bigr tune-recipe --model $S/model --tokenizer $T --num 1000 --out /work/runs/tune \
      --sweep-guidance 1.25,1.5,2,3 --sweep-gumbel 0.1,0.2,0.3,0.5,1 --sweep-steps 8,12,16 \
      --sweep-head-steps 25,50 --recipe release --order entropy --gumbel 0.2 --guidance 2 \
      --steps 12 --head-steps 25 --compile --write ;;
  fast)  # the `fast` recipe, >= 10x faster than the release's algorithm: ~15 points x ~4 min
    bigr tune-recipe --model $S/model --tokenizer $T --num 1000 --out /work/runs/tune-fast \
      --fast 10 --sweep-guidance 1.5,2,3 --sweep-gumbel 0.1,0.2,0.3 --batch-size 100 --compile --write ;;
  install)  # into the package (the text model keeps text-tokenizer/)
    rm -rf $A/model $A/tokenizer
    cp -r $S/model $A/model
    bigr export $T --out $A/tokenizer --dtype float16 ;;
  fid)  # the headline: FID-10k and recall of the recommended recipe (~50 + 17 min)
    bigr sample-fid --model bigr:fashion --recipe recommended --num 10000 --compile \
      --out /work/runs/fid10k
    bigr fid /work/runs/fid10k --ref fashion-mnist:test --ref-stats $S/reference_test_10000.npz \
      --out reports/fashion/fid10k.json ;;
  report)  # every section, cached (reusing the test reference statistics `fid` computed)
    mkdir -p reports/fashion/results
    cp -n $S/reference_test_10000.npz reports/fashion/results/reference_10000.npz 2>/dev/null || true
    bigr report --out reports/fashion --num-sweep 2000 --num-orders 1000 --seeds 3 \
      --num-speed 2000 --speed-batch 50 --speed-repeats 2 --steps-sweep 4,8,12 \
      --head-sweep 10,25,50 --compile "${@:2}" ;;
  *) echo "usage: $0 export|tune|fast|install|fid|report" >&2; exit 2 ;;
esac
