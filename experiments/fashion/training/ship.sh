# Issue 11's last steps, after the generator run has finished its 15,000 steps. Each step is
# resumable (cached points, sample shards, report sections) and can run in a later session:
#   bash reports/fashion/training/ship.sh STEP     STEP = export|tune|install|fid|fast|report
# Done (2026-12-04): export, tune, install, fid, fast; report sections tokenizer, fid (the pair now ships in src/bigr/assets/fashion; the
# sweep's points, table and choice are reports/fashion/training/tune_points.jsonl, tuning.md,
# tuning.json). Costs on this project's 2-core CPU (sampling at ~0.3 s/image for 16 x 25 steps
# with --compile; the FID Inception at ~7-10 images/s) are given per step. Nothing here reads
# the test split except `fid` and `report`: recipes are chosen on fashion-mnist:val (the last
# 5,000 training images).
cd /work/main; . .venv/bin/activate
set -e
# A: the package's models (since `install`): model/ is gen32's EMA at 15,000 steps, tokenizer/
# is tokenizer32ft (decoder fine-tuned, same codes as tokenizer32; chosen on val)
RUN=/work/runs/gen32 A=src/bigr/assets/fashion S=/work/runs/ship R=reports/fashion/training
bigr_table() {  # point a recipe's evidence at the committed table, not at the run folder
  python - "$@" <<'PY'
import json, sys
from pathlib import Path
path = Path(sys.argv[1]) / "recipe.json"
kept = json.loads(path.read_text())
kept["selection"][sys.argv[2]]["table"] = sys.argv[3]
path.write_text(json.dumps(kept, indent=2) + "\n")
PY
}
case "$1" in
  export)  # the EMA weights, float16 (seconds); before `install`
    bigr export $RUN/model --out $S/model --dtype float16 ;;
  tune)  # the recommended recipe (done: 32 points, ~2 h here). Wide in guidance and Gumbel:
    # at guidance 2, Gumbel 0.2 the run's samples are sharp but alike (FID-2k recall 0.34).
    # Before `install` it ran on $S/model and the tokenizer's staged copy (identical weights).
    bigr tune-recipe --model $A/model --tokenizer $A/tokenizer --num 1000 --out /work/runs/tune \
      --sweep-guidance 1.25,1.5,2,3 --sweep-gumbel 0.1,0.2,0.3,0.5,1 --sweep-steps 8,12,16 \
      --sweep-head-steps 25,50 --recipe release --order entropy --gumbel 0.2 --guidance 2 \
      --steps 12 --head-steps 25 --compile --write
    cp /work/runs/tune/points.jsonl $R/tune_points.jsonl
    cp /work/runs/tune/tuning.md /work/runs/tune/tuning.json $R/
    bigr_table $A/model recommended $R/tuning.md ;;
  install)  # into the package (the text model keeps text-tokenizer/); done, after which the
    # staged copies were removed (models/staged/tokenizer32ft is in git history, e.g. 5e544fc)
    rm -rf $A/model $A/tokenizer
    cp -r $S/model $A/model
    bigr export models/staged/tokenizer32ft --out $A/tokenizer --dtype float16 ;;
  fid)  # the issue's headline: FID-10k and recall of the recommended recipe (~55 + 35 min)
    bigr sample-fid --model bigr:fashion --recipe recommended --num 10000 --compile \
      --out /work/runs/fid10k
    bigr fid /work/runs/fid10k --ref fashion-mnist:test --ref-stats $S/reference_test_10000.npz \
      --out reports/fashion/fid10k.json ;;
  fast)  # the `fast` recipe, >= 10x faster than the release's algorithm: ~35 points x ~4 min.
    # The points measured so far are committed (tune_fast_*): a machine without the run folder
    # starts from them (same weights, same release timing, so the same budget) instead of anew.
    F=/work/runs/tune-fast
    if [ ! -f $F/points.jsonl ] && [ -f $R/tune_fast_points.jsonl ]; then
      mkdir -p $F
      cp $R/tune_fast_points.jsonl $F/points.jsonl
      cp $R/tune_fast_weights.txt $F/weights.txt
      cp $R/tune_fast_release_timing.json $F/release_timing.json
    fi
    bigr tune-recipe --model $A/model --tokenizer $A/tokenizer --num 1000 --out $F \
      --fast 10 --sweep-guidance 1.5,2,3 --sweep-gumbel 0.1,0.2,0.3 --batch-size 100 --compile --write
    cp /work/runs/tune-fast/points.jsonl $R/tune_fast_points.jsonl
    cp /work/runs/tune-fast/tuning.md $R/tuning_fast.md
    cp /work/runs/tune-fast/tuning.json $R/tuning_fast.json
    bigr_table $A/model fast $R/tuning_fast.md ;;
  report)  # every section, cached (reusing the test reference statistics `fid` computed).
    # Sections one group at a time: `ship.sh report --sections tokenizer,fid`; every finished
    # sample set is kept in reports/fashion/results/sets/ (commit it), so a cut-off section
    # resumes from it. The issue-12 variants (models/variants/*-3500, variants_run.sh) join the
    # variants and probe sections once all are trained (VARIANTS=1).
    mkdir -p reports/fashion/results
    cp -n $S/reference_test_10000.npz reports/fashion/results/reference_10000.npz 2>/dev/null || true
    V=()
    if [ "${VARIANTS:-0}" = 1 ]; then
      V=(--variant-base flip@3500 --variant flip@3500=models/variants/flip-3500)
      for v in x0 bce uncond; do V+=(--variant $v@3500=models/variants/$v-3500); done
    fi
    bigr report --out reports/fashion --num-sweep 2000 --num-orders 1000 --seeds 3 \
      --num-speed 10000 --speed-batch 50 --speed-repeats 2 --steps-sweep 4,8,12 \
      --head-sweep 10,25,50 --compile "${V[@]}" "${@:2}" ;;
  *) echo "usage: $0 export|tune|install|fid|fast|report" >&2; exit 2 ;;
esac
