"""Where commands write: durable atomic files, folders replaced only when they are ours, and a
lock so that two processes never write one run folder.

Every writer in the package follows three rules:

1. A file is written to a temporary sibling, flushed and `fsync`ed, checked for its size where
   the size is known, and renamed into place: an interrupted or failed write (a full disk)
   raises and leaves any earlier file as it was. A target that exists and is not a regular
   file (a device such as `/dev/full`, a pipe) is refused.
2. A folder is replaced only if it is empty or is a model folder this package wrote (its
   `config.json` names a bigr kind and it holds nothing else of the user's); anything else
   needs `force=True` (`--force` on the command line).
3. A run folder (training, tokenizing, sampling for FID, tuning) is locked while a process
   writes it; a second process is refused with the first one's pid. The lock is an advisory
   `flock` on `FOLDER/.bigr.lock`, released by the kernel if the process dies.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

LOCK_FILE = ".bigr.lock"
# files a model folder written by this package may hold beside its config
MODEL_FILES = frozenset({"config.json", "model.safetensors", "recipe.json"})
MODEL_KINDS = frozenset({"bigr", "tokenizer"})


class OutputError(OSError):
    """An output that must not or cannot be written: one line for the user."""

    def __str__(self) -> str:  # OSError's str would prefix an errno
        return str(self.args[0]) if self.args else ""


def check_target(path: Path) -> None:
    """Refuse to replace something that is not a regular file (a device, a pipe, a folder)."""
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):  # not there (a parent may be a file)
        return
    if stat.S_ISDIR(mode):
        raise OutputError(f"{path}: is a folder; give a file name")
    if not stat.S_ISREG(mode):
        raise OutputError(f"{path}: is not a regular file (a device or a pipe); give a file name")


def check_output_file(path: str | Path | None) -> None:
    """Refuse, before any work, an output file that cannot be written: a device, a folder, or
    a path below a file. None (no output asked for) passes."""
    if path is None:
        return
    path = Path(path)
    check_target(path)
    check_parents(path)


def check_parents(path: Path) -> None:
    """The nearest existing ancestor of `path` must be a folder (else `mkdir` would fail with
    an errno message)."""
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise OutputError(f"{path}: {parent} is a file, not a folder")
            return


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # some filesystems do not open folders; the rename itself still happened
    try:
        os.fsync(fd)
    except OSError as err:
        if err.errno not in (errno.EINVAL, errno.EBADF):  # not supported here: nothing to flush
            raise
    finally:
        os.close(fd)


def atomic_write(
    path: str | Path, write: Callable[[BinaryIO], object], *, size: int | None = None
) -> Path:
    """Write `path` through `write(file)` on a temporary sibling, fsync it, check its `size`
    when given, then rename it into place. Any failure raises and keeps the earlier file."""
    path = Path(path)
    check_target(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        written = tmp.stat().st_size
        if size is not None and written != size:
            raise OutputError(f"{path}: short write ({written} of {size} bytes); is the disk full?")
        _default_mode(tmp)
        os.replace(tmp, path)
        _fsync_folder(path.parent)
    except OSError as err:
        if isinstance(err, OutputError):
            raise
        raise OutputError(f"{path}: could not be written ({err.strerror or err})") from None
    finally:
        tmp.unlink(missing_ok=True)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """`text` (UTF-8) at `path`, durably and atomically."""
    data = text.encode()
    return atomic_write(path, lambda f: f.write(data), size=len(data))


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda f: f.write(data), size=len(data))


def _default_mode(file: Path) -> None:
    """The mode a plain `open` would give (mkstemp makes files 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    file.chmod(0o666 & ~umask)


def fsync_tree(folder: Path) -> None:
    """Flush every file of a freshly written folder, then the folder itself."""
    for file in folder.iterdir():
        if file.is_file():
            with open(file, "rb") as f:
                os.fsync(f.fileno())
    _fsync_folder(folder)


def is_model_folder(folder: Path) -> bool:
    """True if `folder` is a model folder this package wrote and holds nothing else."""
    try:
        meta = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(meta, dict) or meta.get("kind") not in MODEL_KINDS:
        return False
    names = {p.name for p in folder.iterdir() if not p.name.startswith(".")}
    return names <= MODEL_FILES


def check_replaceable(folder: str | Path, *, force: bool = False) -> None:
    """Refuse, before any work, to replace a folder that holds the user's files: only an empty
    folder or a model folder of ours may be replaced, unless `force`."""
    folder = Path(folder)
    if not folder.exists():
        check_parents(folder)
        return
    if not folder.is_dir():
        raise OutputError(f"{folder}: is a file, not a folder")
    if force or is_model_folder(folder):
        return
    names = sorted(p.name for p in folder.iterdir())
    if names:
        shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
        raise OutputError(
            f"{folder}: holds files that are not a bigr model ({shown}); writing there would "
            "delete them. Choose a new or empty folder, or pass --force to replace it"
        )


@contextmanager
def run_lock(folder: str | Path, what: str = "bigr", *, rank: int | None = None) -> Iterator[Path]:
    """Hold `FOLDER/.bigr.lock` while writing the folder; another holder is refused at once
    (with its pid). Made with the folder if needed. Processes that write their own share of a
    folder (the ranks of `tokenize` and `sample-fid`) each lock their `rank`."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{folder}: is a file, not a folder")
    check_parents(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / (LOCK_FILE if rank is None else f".bigr-rank{rank}.lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            share = "" if rank is None else f" as rank {rank}"
            raise OutputError(
                f"{folder}: another process is writing this folder{share} (pid {holder}); wait "
                f"for it to finish, or give {what} another folder"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield folder
    finally:
        os.close(fd)  # closing releases the lock
