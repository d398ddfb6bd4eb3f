"""Progress of long work on the console: one facility (tqdm) for every command.

    progress = ConsoleProgress()          # progress(stage, done, total), as calibration reports it
    ...; progress.done()

    with stage_bar("3D poses", total) as update:   # update(done, total), as processing reports it
        process_take(take, config, progress=update)

Bars go to stderr, so a command's results on stdout stay clean for scripts; without a
terminal they print a line now and then instead of redrawing (tqdm's own rule). The GUI
shows the same callbacks' numbers in its progress bars.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tqdm import tqdm


class ConsoleProgress:
    """A `progress(stage, done, total)` callback (calibration.frames.Progress): one bar per
    stage, a new bar when the stage changes (total 0: a counter without an end)."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.stage = ""
        self._bar: tqdm | None = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self.quiet:
            return
        if stage != self.stage or self._bar is None:
            self.done()
            self.stage = stage
            self._bar = tqdm(total=total or None, desc=stage, unit="", leave=True, mininterval=0.5)
        bar = self._bar
        if total and bar.total != total:
            bar.total = total
        bar.update(max(done - bar.n, 0))

    def done(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        self.stage = ""


@contextmanager
def stage_bar(desc: str, total: int, unit: str = "frame") -> Iterator[Callable[[int, int], None]]:
    """A bar for one stage -> update(done, total) to call as the work goes."""
    with tqdm(total=max(total, 0), desc=desc, unit=unit, leave=False, mininterval=0.5) as bar:
        yield lambda done, _total=0: bar.update(max(done - bar.n, 0))


@contextmanager
def console_to(path: str) -> Iterator[None]:
    """Send what compiled libraries print (C++ std::cout / stdout, file descriptor 1) to `path`
    (a log file, or os.devnull) while the block runs: OpenSim and Blender print their own
    chatter that would bury our summary."""
    import os
    import sys

    sys.stdout.flush()
    saved = os.dup(1)
    with open(path, "ab") as sink:
        os.dup2(sink.fileno(), 1)
        try:
            yield
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)
