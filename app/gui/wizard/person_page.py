"""Wizard page 3 (without a board): pose the cameras from the person walking through the volume.

The same steps as `triangulum calib from-person --source` (app/person_calibration.py), on a
worker thread: BlazePose tracks everyone in every video; the person who is geometrically the
same across views is chosen (the pair matrix shows, for each two cameras, the share of that
person's joints one essential matrix explains); then relative poses, bundle adjustment, the
scale from the person's height and the floor from the feet. A camera that does not agree with
the others (another person, a moved camera, wrong intrinsics) is refused with a sentence that
names it, never saved as good.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from PyQt6 import QtWidgets

from app.gui.wizard.jobs import JobContext
from app.gui.wizard.page import WizardPage
from app.gui.wizard.state import WizardState
from app.gui.wizard.widgets import fill_table, table
from calibration.frames import FrameSource
from calibration.from_person import PersonResult, calibrate_from_person
from calibration.rig import Rig
from calibration.same_person import Chosen


@dataclass
class Stage:
    text: str
    done: int = 0
    total: int = 0


@dataclass
class Posed:
    """The job's result: the chosen person per view, the solution, the time of each step."""

    chosen: Chosen
    result: PersonResult
    timings: dict[str, float]


def pose_from_person(ctx: JobContext, sources: list[FrameSource], intrinsics: Rig, height: float | None) -> Posed:
    """The page's job (see the module docstring)."""
    from app.person_calibration import choose_person, person_options

    def progress(stage: str, done: int, total: int) -> None:
        ctx.check()
        if ctx.due("stage", 0.2):
            ctx.emit(Stage(stage, done, total))

    t0 = time.perf_counter()
    chosen = choose_person(sources, intrinsics, progress=progress)
    timings = {"keypoints": time.perf_counter() - t0}
    ctx.emit(Stage("solving: relative poses, bundle adjustment, scale and floor…"))
    t0 = time.perf_counter()
    result = calibrate_from_person(chosen.keypoints, chosen.confidence, intrinsics, person_options(height), progress)
    timings["solve"] = time.perf_counter() - t0
    return Posed(chosen, result, timings)


class PersonPage(WizardPage):
    """See the module docstring. Entering the page starts the job; `run()` starts it again."""

    def __init__(self, state: WizardState) -> None:
        super().__init__(state, "Pose the cameras from the person",
                         "No board: the joints of the person moving through the volume, seen by every camera at the "
                         "same instants, are the correspondences. Everyone in view is tracked; the person who is the "
                         "same in every camera is used, so a bystander does not spoil the rig.")
        self._key: tuple | None = None
        self.posed: Posed | None = None
        self.stage = QtWidgets.QLabel("")
        self.stage.setWordWrap(True)
        self.progress = QtWidgets.QProgressBar()
        self.agreement = table(["camera"])
        self.agreement.setObjectName("wizard-person-agreement")
        self.per_camera = table(["camera", "median px", "p95 px", "keypoints", "tracker IDs used"])
        self.notes = QtWidgets.QLabel("")
        self.notes.setWordWrap(True)
        self.summary = QtWidgets.QLabel("")
        self.summary.setWordWrap(True)
        self.run_button = QtWidgets.QPushButton("Run again")
        self.run_button.clicked.connect(self.run)
        self.stop_button = QtWidgets.QPushButton("Stop")
        self.stop_button.clicked.connect(self.job.cancel)
        self.job.event.connect(self._event)
        self.job.done.connect(self._done)
        self.job.running_changed.connect(self._running)

        main = QtWidgets.QWidget()
        mv = QtWidgets.QVBoxLayout(main)
        mv.addWidget(QtWidgets.QLabel("Share of the chosen person's joints one essential matrix explains, per pair of cameras"))
        mv.addWidget(self.agreement, 1)
        mv.addWidget(QtWidgets.QLabel("Per camera (final adjustment)"))
        mv.addWidget(self.per_camera, 1)
        side = QtWidgets.QVBoxLayout()
        side.addWidget(self.stage)
        side.addWidget(self.progress)
        buttons = QtWidgets.QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.stop_button)
        side.addLayout(buttons)
        side.addWidget(self.summary)
        side.addWidget(self.notes)
        side.addStretch(1)
        self.arrange(side, 420, (main, 1))

    def initializePage(self) -> None:
        key = (self.state.revision, self.state.height)
        if key != self._key or (self.state.person is None and not self.job.running):
            self._key = key
            self.run()

    def run(self) -> None:
        s = self.state
        self.clear_error()
        self.posed, s.person, s.person_notes = None, None, []
        self.summary.setText("")
        self.notes.setText("")
        fill_table(self.per_camera, [])
        intrinsics, sources, height = s.intrinsics_rig(), list(s.sources), s.height
        self.job.start(lambda ctx: pose_from_person(ctx, sources, intrinsics, height))

    def _running(self, running: bool) -> None:
        self.run_button.setEnabled(not running)
        self.stop_button.setEnabled(running)
        self.progress.setRange(0, 0 if running else 1)
        self.completeChanged.emit()

    def _event(self, event: object) -> None:
        if isinstance(event, Stage):
            self.stage.setText(event.text + (f" {event.done}" if event.done else ""))

    def _done(self, posed: object) -> None:
        if not isinstance(posed, Posed):
            return
        s = self.state
        self.posed, s.person, s.person_notes = posed, posed.result, list(posed.chosen.notes)
        s.timings = dict(posed.timings)
        res, names = posed.result, posed.result.rig.names
        self.stage.setText("done")
        self.agreement.setColumnCount(len(names) + 1)
        self.agreement.setHorizontalHeaderLabels(["camera", *names])
        fill_table(self.agreement, [[a, *("–" if a == b or not np.isfinite(posed.chosen.agreement[i, j])
                                          else f"{posed.chosen.agreement[i, j]:.0%}" for j, b in enumerate(names))]
                                    for i, a in enumerate(names)])
        rows = []
        for c, n in enumerate(names):
            e = res.errors[res.obs.camera == c]
            rows.append([n, f"{np.median(e):.2f}" if len(e) else "–", f"{np.percentile(e, 95):.2f}" if len(e) else "–",
                         str(len(e)), ", ".join(str(t) for t in posed.chosen.tracks[c])])
        fill_table(self.per_camera, rows)
        self.summary.setText(res.summary())  # holds the solver's warnings
        self.notes.setText("\n".join(f"• {n}" for n in posed.chosen.notes))
        self.progress.setValue(1)
        self.completeChanged.emit()

    def isComplete(self) -> bool:
        return self.state.person is not None and not self.job.running
