"""Training holds only what the run needs: no resume state after it is loaded, no gathered
checkpoint between checkpoints. Measured by counting the bytes of every live tensor storage at
the start of each step, in a fresh run and in a resumed one."""

import gc

import pytest
import torch

from bigr.cli import main
from bigr.train import generator
from helpers import TRAIN_ARGS, random_codes


def live_tensor_bytes() -> int:
    """Bytes of the distinct storages of every tensor the interpreter can reach, leaving out
    the cache of epoch orders (bounded: the current epoch's and the next one's)."""
    from bigr.train.step_draws import epoch_permutation

    epoch_permutation.cache_clear()
    gc.collect()
    storages = {}
    for obj in gc.get_objects():
        if not isinstance(obj, torch.Tensor) or obj.is_meta:
            continue
        obj = getattr(obj, "_local_tensor", obj)  # a DTensor: the shard this rank holds
        try:
            storage = obj.untyped_storage()
            if storage.nbytes():  # FSDP frees unsharded parameters by resizing them to 0
                storages[storage.data_ptr()] = storage.nbytes()
        except RuntimeError:  # a storage that was freed, or a wrapper without one
            continue
    return sum(storages.values())


@pytest.fixture
def measured(monkeypatch):
    """step -> live tensor bytes when that step starts, for the runs made in the test."""
    records: list[dict[int, int]] = []
    step_fn = generator.train_step

    def spy(step, *args, **kwargs):
        records[-1][step] = live_tensor_bytes()
        return step_fn(step, *args, **kwargs)

    monkeypatch.setattr(generator, "train_step", spy)
    # a checkpoint's CPU snapshot lives while its background write is in flight; written at
    # once here, so that what is measured is what stays after the write
    monkeypatch.setattr(generator.BackgroundWriter, "submit", lambda self, write: write())

    def run(argv):
        records.append({})
        assert main(argv) == 0
        return records[-1]

    return run


def test_no_resume_state_or_gathered_checkpoint_stays_alive(measured, tmp_path):
    codes = random_codes(tmp_path / "codes")
    common = ["train", "--codes", str(codes), *TRAIN_ARGS, "--steps", "8",
              "--checkpoint-every", "2"]  # fmt: skip
    fresh = measured([*common, "--out", str(tmp_path / "a")])
    # after the first step the optimizer's moments exist; checkpoints at 2, 4, 6 change nothing
    steady = fresh[1]
    for step in (3, 5, 7):
        assert fresh[step] == steady, (step, fresh[step] - steady)
    measured([*common, "--out", str(tmp_path / "b"), "--stop-at", "4"])
    resumed = measured([*common, "--out", str(tmp_path / "b"), "--resume"])
    for step in (4, 5, 6, 7):  # a resumed run holds what the uninterrupted one holds
        assert resumed[step] == fresh[step], (step, resumed[step] - fresh[step])
