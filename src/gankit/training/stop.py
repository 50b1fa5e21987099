"""Stopping on request: the first Ctrl-C or SIGTERM finishes the step and checkpoints."""

from __future__ import annotations

import signal
import threading


class StopFlag:
    """The first Ctrl-C (SIGINT) or SIGTERM asks the loop to stop after the current step and
    checkpoint; a second one interrupts at once. SIGTERM is what `timeout`, `kill`, job
    schedulers and container runtimes send before they kill: without this a preempted run lost
    everything since its last periodic checkpoint."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.requested: str | None = None  # the signal's name once one arrived
        self._previous: dict[int, object] = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name

    def __exit__(self, *exc):
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
