"""Writers: atomic and durable files, folders replaced only when they are ours, run-folder locks."""

import errno
import os
import stat
import subprocess
import sys
import time

import pytest
import torch

from bigr import PRESETS, BiGR
from bigr.outputs import (
    OutputError,
    atomic_write_text,
    check_replaceable,
    is_model_folder,
    run_lock,
)


def _no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_file_is_replaced_whole_and_leaves_no_temporaries(tmp_path):
    target = tmp_path / "result.json"
    atomic_write_text(target, "old\n")
    atomic_write_text(target, "new\n")
    assert target.read_text() == "new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.json"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_full_disk_raises_and_keeps_the_earlier_file(tmp_path, monkeypatch):
    target = tmp_path / "result.json"
    atomic_write_text(target, "earlier\n")
    monkeypatch.setattr(os, "fsync", _no_space)
    with pytest.raises(OutputError, match="No space left on device"):
        atomic_write_text(target, "later\n")
    assert target.read_text() == "earlier\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.json"]


def test_a_device_or_folder_is_never_replaced(tmp_path):
    if os.path.exists("/dev/full"):
        with pytest.raises(OutputError, match="not a regular file"):
            atomic_write_text("/dev/full", "x")
        assert stat.S_ISCHR(os.stat("/dev/full").st_mode)
    with pytest.raises(OutputError, match="is a folder"):
        atomic_write_text(tmp_path, "x")


def test_only_empty_or_model_folders_are_replaced(tmp_path):
    check_replaceable(tmp_path / "new")  # missing: fine
    (tmp_path / "empty").mkdir()
    check_replaceable(tmp_path / "empty")
    model = BiGR(PRESETS["bigr-tiny"]).save_pretrained(tmp_path / "model")
    assert is_model_folder(model)
    check_replaceable(model)
    (model / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match=r"notes\.txt.*--force"):
        check_replaceable(model)
    check_replaceable(model, force=True)
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="is a file"):
        check_replaceable(tmp_path / "file")
    with pytest.raises(OutputError, match="is a file, not a folder"):
        check_replaceable(tmp_path / "file" / "below")


def test_saving_a_model_over_the_users_files_is_refused_and_deletes_nothing(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "holiday.jpg").write_bytes(b"\xff\xd8 a photo")
    model = BiGR(PRESETS["bigr-tiny"])
    with pytest.raises(OutputError, match=r"holiday\.jpg"):
        model.save_pretrained(folder)
    assert (folder / "holiday.jpg").read_bytes() == b"\xff\xd8 a photo"
    model.save_pretrained(folder, force=True)
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]


def test_a_full_disk_while_saving_a_model_keeps_the_earlier_model(tmp_path, monkeypatch):
    torch.manual_seed(0)
    first = BiGR(PRESETS["bigr-tiny"]).save_pretrained(tmp_path / "model")
    before = (first / "model.safetensors").read_bytes()
    monkeypatch.setattr(os, "fsync", _no_space)
    with pytest.raises(OutputError, match="No space left"):
        BiGR(PRESETS["bigr-tiny"]).save_pretrained(tmp_path / "model")
    assert (first / "model.safetensors").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_a_locked_run_folder_refuses_a_second_writer_with_its_pid(tmp_path):
    with run_lock(tmp_path / "run", "train --out"):
        second = run_lock(tmp_path / "run", "train --out")
        with pytest.raises(OutputError, match=rf"pid {os.getpid()}\).*another folder"), second:
            pass
        with run_lock(tmp_path / "run", "tokenize --out", rank=1):  # another rank's share
            pass
    with run_lock(tmp_path / "run"):  # released on exit
        pass


def test_a_lock_dies_with_its_process(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from bigr.outputs import run_lock\n"
         "with run_lock(sys.argv[1]):\n    print('held', flush=True); time.sleep(60)",
         str(tmp_path)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(OutputError, match=f"pid {holder.pid}"), run_lock(tmp_path):
            pass
    finally:
        holder.kill()
        holder.wait()
    deadline = time.monotonic() + 10
    while True:  # the kernel drops the lock with the process
        try:
            with run_lock(tmp_path):
                break
        except OutputError:
            assert time.monotonic() < deadline
            time.sleep(0.05)
