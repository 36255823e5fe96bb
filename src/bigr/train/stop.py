"""Stopping a training run cleanly: SIGTERM or SIGINT asks the loop to checkpoint the step it
has just finished and return, so an interrupted run (a session ending, Ctrl-C) resumes from
there with `--resume` instead of from its last periodic checkpoint. A second signal while the
checkpoint is written falls back to the default action (the process ends at once; the previous
`state.pt` stays valid: checkpoints are written atomically).

Under torchrun every rank receives the signal, possibly at different steps: the ranks agree on
stopping (and on the signal) through an all-reduce each step, so they save and leave at the
same step and exit alike.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

import torch

from .. import distributed

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopRequest:
    """A context manager: while inside, SIGTERM / SIGINT set `signum` instead of ending the
    process (main thread only; elsewhere signals keep their default meaning)."""

    def __init__(self) -> None:
        self.signum = 0
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signum = signum
        for sig, handler in self._previous.items():  # a second signal acts as usual
            signal.signal(sig, handler)

    def requested(self, ctx: distributed.Context) -> int:
        """The signal some rank was asked to stop by (0: none); one all-reduce when
        distributed, so every rank gets the same answer at the same step."""
        if not ctx.distributed:
            return self.signum
        signum = torch.tensor([self.signum], device=ctx.device)
        return int(distributed.all_reduce_max(ctx, signum).item())
