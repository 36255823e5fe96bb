"""`bigr sample-fid` and `bigr tokenize` launched under torchrun as the README shows them: two
gloo processes write the same sample set and the same code shards, bit for bit, as one."""

import os
import subprocess
import sys

import numpy as np

ARGS = ["--model", "bigr:fashion", "--num-samples", "4", "--steps", "2", "--head-steps", "2"]
ARGS += ["--batch-size", "2", "--shard-size", "2"]


def _run(head: list[str], out) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [*head, "-m", "bigr", "sample-fid", *ARGS, "--out", str(out)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


def test_two_torchrun_processes_write_what_one_process_writes(tmp_path):
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    _run(torchrun, tmp_path / "two")
    _run([sys.executable], tmp_path / "one")
    one, two = np.load(tmp_path / "one" / "samples.npz"), np.load(tmp_path / "two" / "samples.npz")
    assert one["arr_0"].shape == (4, 32, 32, 3)
    assert all(np.array_equal(one[k], two[k]) for k in ("arr_0", "labels"))


def test_two_torchrun_processes_tokenize_what_one_process_does(tmp_path):
    """`torchrun ... -m bigr tokenize`, as the README shows it: the same shards as one process."""
    import pytest

    from bigr.data import has_fashion_mnist

    if not has_fashion_mnist():
        pytest.skip("needs dataset-fashion-mnist")
    args = ["-m", "bigr", "tokenize", "--tokenizer", "bigr:fashion-tokenizer", "--data",
            "fashion-mnist:val[:12]", "--deterministic", "--shard-size", "4"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    for head, name in ((torchrun, "two"), ([sys.executable], "one")):
        cmd = [*head, *args, "--out", str(tmp_path / name)]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
    shards = sorted(p.name for p in (tmp_path / "one").glob("shard-*.npy"))
    assert len(shards) == 6  # codes and labels of 3 shards
    assert shards == sorted(p.name for p in (tmp_path / "two").glob("shard-*.npy"))
    for name in shards:
        assert np.array_equal(np.load(tmp_path / "one" / name), np.load(tmp_path / "two" / name))
