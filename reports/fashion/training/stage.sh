# Stop the generator run at the step it is on (SIGTERM: checkpoint, exit 143), stage its EMA.
set -x
cd /work/main; . .venv/bin/activate
pkill -f watchdog.sh
TP=$(pgrep -f 'bigr train' | head -1)
kill -CONT $TP; kill -TERM $TP
while kill -0 $TP 2>/dev/null; do sleep 1; done
STEP=$(python -c "import json; print(json.load(open('/work/runs/gen32/model/config.json'))['extra']['trained_steps'])")
echo "step $STEP"
rm -rf /tmp/x; bigr export /work/runs/gen32/model --out /tmp/x --dtype float16
rm -rf models/staged/gen32; cp -r /tmp/x models/staged/gen32
cp /work/runs/gen32/log.jsonl reports/fashion/training/gen32_log.jsonl
cp /work/runs/gen32/loss.png reports/fashion/training/gen32_loss.png
echo $STEP > /work/runs/staged_step
