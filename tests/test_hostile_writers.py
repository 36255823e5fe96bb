"""Writers at the command line: nothing of the user's is deleted, a write that fails (a full
disk, a device as output) is an error and keeps the earlier output, and two processes never
write one folder."""

import errno
import os

import pytest

from bigr.cli import main
from bigr.outputs import run_lock


def _run(argv, capsys) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exit:
        code = exit.code
    return code, capsys.readouterr().err


def _one_error(argv, message, capsys) -> str:
    code, err = _run(argv, capsys)
    errors = [line for line in err.splitlines() if "error:" in line]
    assert code != 0 and len(errors) == 1 and message in errors[0], err
    assert "Traceback" not in err
    return errors[0]


@pytest.fixture
def users_folder(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("my notes")
    (folder / "sub").mkdir()
    return folder


def test_export_refuses_a_folder_of_the_users_files_and_deletes_nothing(users_folder, capsys):
    line = _one_error(["export", "bigr:fashion-tokenizer", "--out", str(users_folder)],
                      "--force", capsys)  # fmt: skip
    assert "notes.txt" in line and "sub" in line
    assert (users_folder / "notes.txt").read_text() == "my notes"


def test_export_with_force_replaces_the_folder(users_folder, capsys):
    assert main(["export", "bigr:fashion-tokenizer", "--out", str(users_folder), "--force"]) == 0
    assert sorted(p.name for p in users_folder.iterdir()) == ["config.json", "model.safetensors"]


def test_export_over_an_earlier_export_needs_no_force(tmp_path, capsys):
    out = tmp_path / "model"
    assert main(["export", "bigr:fashion-tokenizer", "--out", str(out)]) == 0
    assert main(["export", "bigr:fashion-tokenizer", "--out", str(out), "--dtype", "float32"]) == 0
    assert '"stored_dtype": "float32"' in (out / "config.json").read_text()


def test_a_full_disk_during_export_is_an_error_and_keeps_the_earlier_export(
    tmp_path, capsys, monkeypatch
):
    out = tmp_path / "model"
    assert main(["export", "bigr:fashion-tokenizer", "--out", str(out)]) == 0
    before = (out / "model.safetensors").read_bytes()

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    line = _one_error(["export", "bigr:fashion-tokenizer", "--out", str(out), "--dtype",
                       "float32"], "No space left on device", capsys)  # fmt: skip
    assert "could not be written" in line
    assert (out / "model.safetensors").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no temporaries left


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_device_as_output_is_refused_before_any_work(tmp_path, capsys):
    samples = tmp_path / "samples.npz"
    _one_error(["fid", str(samples), "--ref", "fashion-mnist:val", "--out", "/dev/full"],
               "not a regular file", capsys)  # fmt: skip
    _one_error(["sample", "--model", "bigr:fashion", "--classes", "1", "--out", "/dev/full"],
               "/dev/full", capsys)  # fmt: skip


def test_an_output_below_a_file_is_one_clear_line(tmp_path, capsys):
    afile = tmp_path / "a.txt"
    afile.write_text("x")
    for argv in (
        ["export", "bigr:fashion-tokenizer", "--out", str(afile / "model")],
        ["fid", str(tmp_path), "--ref", "fashion-mnist:val", "--out", str(afile / "r.json")],
        ["sample-fid", "--model", "bigr:fashion", "--num-samples", "2", "--out",
         str(afile / "set")],
        ["tokenize", "--tokenizer", "bigr:fashion-tokenizer", "--data", "fashion-mnist:val[:2]",
         "--out", str(afile / "codes")],
    ):  # fmt: skip
        _one_error(argv, "is a file", capsys)
    assert afile.read_text() == "x"


def test_a_second_writer_of_a_sample_or_code_folder_is_refused(tmp_path, capsys):
    out = tmp_path / "set"
    with run_lock(out, rank=0):
        _one_error(["sample-fid", "--model", "bigr:fashion", "--num-samples", "2", "--steps",
                    "2", "--head-steps", "2", "--out", str(out)],
                   "another process is writing this folder as rank 0", capsys)  # fmt: skip
        _one_error(["tokenize", "--tokenizer", "bigr:fashion-tokenizer", "--data",
                    "fashion-mnist:val[:2]", "--out", str(out)],
                   "another process", capsys)  # fmt: skip
    assert sorted(p.name for p in out.iterdir()) == [".bigr-rank0.lock"]


def test_a_batch_larger_than_the_memory_is_one_line_with_the_batch_that_fits(
    tmp_path, capsys, monkeypatch
):
    from bigr import memory

    monkeypatch.setattr(memory, "available_bytes", lambda device: 10 * 1024**2)
    out = tmp_path / "s.png"
    argv = ["sample", "--model", "bigr:fashion", "--classes", "1", "--num", "64", "--out",
            str(out)]  # fmt: skip
    line = _one_error(argv, "--batch-size", capsys)
    assert "GiB is free" in line and not out.exists()


def test_outputs_under_missing_folders_are_made(tmp_path):
    deep = tmp_path / "a" / "b"
    assert main(["export", "bigr:fashion-tokenizer", "--out", str(deep / "model")]) == 0
    assert main(["sample", "--model", "bigr:fashion", "--classes", "1", "--num", "1", "--steps",
                 "2", "--head-steps", "2", "--out", str(deep / "s" / "x.png"), "--codes-out",
                 str(deep / "c" / "codes.pt")]) == 0  # fmt: skip
    assert (deep / "s" / "x.png").is_file() and (deep / "c" / "codes.pt").is_file()
