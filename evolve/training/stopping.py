"""Stopping a run cleanly on Ctrl-C (SIGINT) or SIGTERM (``timeout``, schedulers, containers).

The first signal only asks: the loop finishes the generation (or iteration) it is in, saves,
and returns. A second signal stops at once, as a plain Ctrl-C would (``KeyboardInterrupt``;
the last completed generation is saved). A flag checked between generations cannot be lost,
where an exception raised from a signal handler can be swallowed by a ``__del__`` or weakref
callback that happens to be running.

A time budget (:mod:`evolve.training.budget`) ends a stage the same way, between steps, but
it is not a stop request: the recipe moves on to its next stage. ``StopRequest.deadline``
carries the current stage's deadline, and :meth:`StopRequest.should_stop` is what the loops
check.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType

from evolve.logs import get_logger
from evolve.training.budget import StageDeadline

log = get_logger()

HANDLED = (signal.SIGINT, signal.SIGTERM)


@dataclass
class StopRequest:
    """Whether, and by which signal, the run was asked to stop; and the stage's deadline.

    Attributes:
        signal: the signal that asked (None: none did).
        deadline: the current stage's time budget (None: no budget).
    """

    signal: int | None = None
    deadline: StageDeadline | None = None

    @property
    def requested(self) -> bool:
        """A signal asked the whole run to stop (a spent budget does not)."""
        return self.signal is not None

    def out_of_time(self, done: int) -> bool:
        """The stage has spent its budget; never before its first step (``done`` 0)."""
        return done > 0 and self.past_deadline()

    def past_deadline(self) -> bool:
        """The stage's budget is spent (whatever it has done; callers that must finish a first
        unit of work check that themselves)."""
        return self.deadline is not None and self.deadline.passed()

    def should_stop(self, done: int) -> bool:
        """Whether a loop that has ``done`` steps of its stage stops before the next one."""
        return self.requested or self.out_of_time(done)

    @property
    def exit_code(self) -> int:
        """The shell's code for death by that signal: 130 for SIGINT, 143 for SIGTERM."""
        return 128 + (self.signal or signal.SIGINT)


@contextmanager
def stop_on_signals() -> Iterator[StopRequest]:
    """Within the block, SIGINT and SIGTERM set the returned request (the second raises).

    Outside the main thread (where Python cannot install handlers) the request is never set
    and signals keep their usual effect.
    """
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return

    def handle(signum: int, frame: FrameType | None) -> None:
        if request.requested:
            raise KeyboardInterrupt
        request.signal = signum
        log.info(
            "%s received: stopping after this step and saving (send it again to stop now)",
            signal.Signals(signum).name,
        )

    previous = {s: signal.getsignal(s) for s in HANDLED}
    # A signal ignored from the start (a background job's SIGINT, nohup) stays ignored.
    active = [s for s in HANDLED if previous[s] is not signal.SIG_IGN]
    for s in active:
        signal.signal(s, handle)
    try:
        yield request
    finally:
        for s in active:
            signal.signal(s, previous[s])
