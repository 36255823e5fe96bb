"""The run folder's background checkpoint writer and the CPU snapshot it writes."""

import threading

import pytest
import torch

from bigr.train.generator_run import BackgroundWriter, cpu_copy


def test_writes_run_on_a_thread_one_at_a_time():
    release, order = threading.Event(), []

    def slow() -> None:
        release.wait(5)
        order.append("first")

    writer = BackgroundWriter()
    writer.submit(slow)
    order.append("training goes on")  # submit returned while the write still waits
    release.set()
    writer.submit(lambda: order.append("second"))  # waits for the first write
    writer.wait()
    assert order == ["training goes on", "first", "second"]


def test_a_failed_write_is_raised_by_the_next_wait_or_submit():
    writer = BackgroundWriter()

    def full_disk() -> None:
        raise OSError("No space left on device")

    writer.submit(full_disk)
    with pytest.raises(OSError, match="No space left"):
        writer.wait()
    writer.wait()  # reported once
    writer.submit(full_disk)
    with pytest.raises(OSError, match="No space left"):
        writer.submit(lambda: None)


def test_the_snapshot_does_not_change_with_training():
    weights = torch.ones(3)
    state = {"model": {"w": weights}, "opt": {"state": {"w": {"step": torch.tensor(1.0)}}}}
    snap = cpu_copy(state)
    weights.add_(1.0)
    state["opt"]["state"]["w"]["step"].add_(1.0)
    assert snap["model"]["w"].tolist() == [1.0, 1.0, 1.0]
    assert snap["opt"]["state"]["w"]["step"].item() == 1.0
