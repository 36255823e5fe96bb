# (The run finished at 15,000 steps; its EMA export ships as src/bigr/assets/fashion/model.)
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
# A run restarted with --init (its folder lost) logs only its own steps: keep the committed
# rows before them, then replot the whole curve.
python - <<'PY'
import json
from pathlib import Path
from bigr.plots import plot_curves
kept, run = Path("reports/fashion/training/gen32_log.jsonl"), Path("/work/runs/gen32/log.jsonl")
rows = [json.loads(r) for r in run.read_text().splitlines() if r.strip()]
first = rows[0]["step"] if rows else 0
old = [json.loads(r) for r in kept.read_text().splitlines() if r.strip()] if kept.is_file() else []
rows = [r for r in old if r["step"] < first] + rows
kept.write_text("".join(json.dumps(r) + "\n" for r in rows))
steps = [r["step"] for r in rows]
plot_curves(
    Path("reports/fashion/training/gen32_loss.png"),
    {"loss": (steps, [r["loss"] for r in rows])},
    title="masked-modelling loss (masked bits, weighted BCE)",
    ylabel="loss",
)
PY
echo $STEP > /work/runs/staged_step
