"""Background work for the wizard's pages: one worker thread per job, results as Qt signals.

A job is a function `work(ctx)` run on its own thread; it reports what it sees with
`ctx.emit(event)` (delivered on the UI thread as `Job.event`) and ends with a return value
(`Job.done`) or an exception (`Job.failed`, as a sentence). Cancelling sets a flag the work
checks between frames; events of a cancelled run are dropped, so a page that restarts a job
never sees stale frames. The UI thread never waits for a job.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from PyQt6 import QtCore

from app.gui.controller import user_message
from calibration.errors import TriangulumError

log = logging.getLogger(__name__)


class Cancelled(Exception):
    """Raised inside a job's work when the job was cancelled."""


class JobContext:
    """What a job's work sees: emit events, check for cancellation, pace previews."""

    def __init__(self, emit: Callable[[object], None]) -> None:
        self._emit = emit
        self._cancel = threading.Event()
        self._last: dict[str, float] = {}

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def check(self) -> None:
        if self._cancel.is_set():
            raise Cancelled()

    def emit(self, event: object) -> None:
        self.check()
        self._emit(event)

    def due(self, key: str, interval: float = 0.1) -> bool:
        """True at most every `interval` seconds per key (previews need not come faster)."""
        now = time.monotonic()
        if now - self._last.get(key, -1e9) < interval:
            return False
        self._last[key] = now
        return True


class Job(QtCore.QObject):
    """Runs one piece of work at a time on a worker thread (see the module docstring)."""

    event = QtCore.pyqtSignal(object)
    done = QtCore.pyqtSignal(object)
    failed = QtCore.pyqtSignal(str)
    running_changed = QtCore.pyqtSignal(bool)
    _event = QtCore.pyqtSignal(int, object)
    _finished = QtCore.pyqtSignal(int, object, object)  # (run, result, error message or None)

    def __init__(self, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self._run = 0
        self._ctx: JobContext | None = None
        self._thread: threading.Thread | None = None
        self.running = False
        self._event.connect(self._deliver_event)
        self._finished.connect(self._deliver_finished)

    def start(self, work: Callable[[JobContext], Any]) -> None:
        """Cancel any running work and start `work` on a new thread."""
        self.cancel()
        self._run += 1
        run = self._run
        ctx = JobContext(lambda e: self._safe_emit("_event", run, e))
        self._ctx = ctx

        def body() -> None:
            try:
                result = work(ctx)
            except Cancelled:
                return
            except BaseException as exc:  # every failure reaches the page as a sentence
                if not isinstance(exc, TriangulumError):
                    log.error("wizard job failed:\n%s", traceback.format_exc())
                if not ctx.cancelled:
                    self._safe_emit("_finished", run, None, user_message(exc))
                return
            if not ctx.cancelled:
                self._safe_emit("_finished", run, result, None)

        self._thread = threading.Thread(target=body, name="wizard-job", daemon=True)
        self.running = True
        self.running_changed.emit(True)
        self._thread.start()

    def _safe_emit(self, signal: str, *args) -> None:
        try:
            getattr(self, signal).emit(*args)
        except RuntimeError:  # the page was closed and its job object deleted meanwhile
            pass

    def cancel(self) -> None:
        """Stop the current work at its next check; its events and result are dropped."""
        if self._ctx is not None:
            self._ctx._cancel.set()
        self._ctx = None
        if self.running:
            self._run += 1
            self.running = False
            self.running_changed.emit(False)

    def wait(self, timeout: float) -> bool:
        """Join the worker thread (tests and shutdown only; never from a page's slot)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    def _deliver_event(self, run: int, event: object) -> None:
        if run == self._run:
            self.event.emit(event)

    def _deliver_finished(self, run: int, result: object, message: str | None) -> None:
        if run != self._run:
            return
        self._ctx = None
        self.running = False
        self.running_changed.emit(False)
        if message is None:
            self.done.emit(result)
        else:
            self.failed.emit(message)
