"""The measuring scripts in scripts/ run end to end on a tiny configuration."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import random_codes

ROOT = Path(__file__).resolve().parents[1]


def _head() -> str | None:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        return None
    done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else None


def test_train_loop_speed_compares_two_revisions(tmp_path):
    head = _head()
    if head is None:
        pytest.skip("needs a git checkout of this repository")
    codes = random_codes(tmp_path / "codes")
    out = tmp_path / "runs"
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    flags = ["--preset", "bigr-tiny", "--set", "code_bits=16", "--set", "grid_size=4"]
    flags += ["--batch-size", "8", "--checkpoint-every", "5"]
    done = subprocess.run(
        ["bash", str(ROOT / "scripts/train_loop_speed.sh"), head, str(codes), str(out), "10", "1",
         "--", *flags],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    lines = (out / "results.tsv").read_text().splitlines()
    assert lines[0].split("\t") == ["run", "steps_per_second", "loss_at_end"]
    rows = {line.split("\t")[0]: line.split("\t")[1:] for line in lines[1:]}
    assert set(rows) == {"before-1", "after-1"}
    assert all(float(rate) > 0 for rate, _ in rows.values())
    # the committed revision against the checkout's sources: the same seeded run, the same loss
    assert rows["before-1"][1] == rows["after-1"][1]
    assert "after / before" in done.stdout


def test_train_loop_speed_usage():
    done = subprocess.run(
        ["bash", str(ROOT / "scripts/train_loop_speed.sh")], capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "BEFORE_REV" in done.stderr
