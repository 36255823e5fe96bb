#!/usr/bin/env bash
# One GPU lease for the study's larger generator: train a size of the pilot on code shards for a
# fixed number of minutes, export its EMA weights, and leave what comes back in OUT_FILES.
#
#   bash experiments/fashion/gpu_train.sh CODES RUN OUT_FILES [SIZE] [MINUTES] [STEPS]
#
# CODES: the pipeline's `codes` stage output (carry it to the machine: about 28 MB).
# RUN: a run folder on the machine. OUT_FILES: a folder whose files come back (the device
# tool's $OUT): log.jsonl, config.json and the fp16 EMA weights in parts of at most 15 MB
# (rejoin with `cat model.safetensors.part-* > model.safetensors`), then warm-start the CPU run
# from them with the pipeline's generator command plus `--init DIR`.
# SIZE: a key of experiments/fashion/stages.py SIZES (default w256). MINUTES: training time
# before SIGTERM, which saves the finished step (default 8). STEPS: the schedule's length
# (default 15000, the pipeline's). BIGR_DEVICE=cpu runs the same on a CPU with fp32 and no
# compile, to check the script before a lease.
set -euo pipefail
cd "$(dirname "$0")/../.."
codes=${1:?give the codes folder} run=${2:?give a run folder} out=${3:?give the output folder}
size=${4:-w256} minutes=${5:-8} steps=${6:-15000}
py=${PYTHON:-python3}
device=${BIGR_DEVICE:-cuda}
export PYTHONPATH="$PWD/src:$PWD${PYTHONPATH:+:$PYTHONPATH}"
flags=$("$py" -c "from experiments.fashion.stages import SIZES; print(SIZES['$size'])")
precision=bf16 compile=--compile
if [ "$device" = cpu ]; then precision=fp32 compile=; fi
"$py" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
mkdir -p "$out"
rc=0
# the pipeline's generator recipe (batch 256, lr 1e-3 cosine, EMA 0.999) at another precision
# shellcheck disable=SC2086
timeout -s TERM "$((minutes * 60))" "$py" -m bigr train --codes "$codes" --preset bigr-fashion \
  --set code_bits=32 $flags --out "$run" --steps "$steps" --batch-size 256 --lr 1e-3 \
  --warmup 300 --lr-schedule cosine --min-lr 1e-5 --ema-decay 0.999 --checkpoint-every 500 \
  --sample-every 0 --log-every 100 --per-sample-mask --precision "$precision" $compile \
  --device "$device" --resume || rc=$?
case $rc in
  0 | 124 | 143) ;;  # finished, or stopped by the time limit after saving the step
  *) echo "training failed with exit $rc" >&2; exit "$rc" ;;
esac
"$py" -m bigr export "$run/model" --out "$run/model-fp16" --dtype float16
cp "$run/log.jsonl" "$run/model-fp16/config.json" "$out/"
split -b 15M -d "$run/model-fp16/model.safetensors" "$out/model.safetensors.part-"
ls -l "$out"
