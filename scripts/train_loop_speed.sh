#!/usr/bin/env bash
# Steps per second of the whole generator training loop (batch draws, step, EMA, logging,
# checkpoint writes) at two revisions of this repository, on the same codes and flags: the
# before/after measurement of a change to the loop. Runs alternate BEFORE, AFTER, BEFORE,
# AFTER (REPEATS pairs) so drift of a shared machine hits both alike; each run's rate is taken
# between its first and last logged step, so start-up and compilation are not counted.
#
# usage: scripts/train_loop_speed.sh BEFORE_REV CODES OUT [STEPS] [REPEATS] [-- TRAIN FLAGS...]
#   BEFORE_REV  a git revision of this repository (checked out into OUT/before-src)
#   CODES       a shard folder written by `bigr tokenize`
#   OUT         a scratch folder for the runs (removed runs are re-created)
#   STEPS       optimisation steps per run (default 40, logged every 5)
#   REPEATS     before/after pairs (default 2)
#   TRAIN FLAGS default: --preset bigr-fashion --set code_bits=32 --batch-size 256 --compile
#               --per-sample-mask --checkpoint-every 20 (the study's generator recipe)
# environment: PYTHON (default python)
set -euo pipefail
if [ $# -lt 3 ]; then
    sed -n '/^# usage/,/^# environment/p' "$0" >&2
    exit 2
fi
before=$1 codes=$2 out=$3
shift 3
steps=40 repeats=2
if [ $# -gt 0 ] && [ "$1" != "--" ]; then steps=$1; shift; fi
if [ $# -gt 0 ] && [ "$1" != "--" ]; then repeats=$1; shift; fi
if [ $# -gt 0 ] && [ "$1" = "--" ]; then shift; fi
flags=("$@")
if [ ${#flags[@]} -eq 0 ]; then
    flags=(--preset bigr-fashion --set code_bits=32 --batch-size 256 --compile --per-sample-mask
           --checkpoint-every 20)
fi
python=${PYTHON:-python}
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)
rm -rf "$out/before-src"
git -C "$root" archive "$before" src | tar -x -C "$out" --transform "s|^src|before-src|"
run() {  # run NAME SRC
    local dir="$out/$1"
    rm -rf "$dir"
    PYTHONPATH="$2" "$python" -m bigr train --codes "$codes" --out "$dir" --steps "$steps" \
        --warmup 5 --log-every 5 --seed 0 "${flags[@]}" > "$dir.log" 2>&1
    "$python" - "$dir/log.jsonl" "$1" <<'EOF'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if '"seconds"' in line]
first, last = rows[0], rows[-1]
rate = (last["step"] - first["step"]) / (last["seconds"] - first["seconds"])
print(f"{sys.argv[2]}\t{rate:.4f}\t{last['loss']:.6f}")
EOF
}
results="$out/results.tsv"
printf 'run\tsteps_per_second\tloss_at_end\n' > "$results"
for i in $(seq 1 "$repeats"); do
    run "before-$i" "$out/before-src" >> "$results"
    run "after-$i" "$root/src" >> "$results"
done
"$python" - "$results" "$before" <<'EOF'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
best = {}
for r in rows:
    side = r["run"].split("-")[0]
    best[side] = max(best.get(side, 0.0), float(r["steps_per_second"]))
for r in rows:
    print(f"{r['run']:>10}  {float(r['steps_per_second']):.4f} steps/s  loss {r['loss_at_end']}")
print(f"after / before ({sys.argv[2]}), best run of each: {best['after'] / best['before']:.3f}x")
EOF
