"""What the calibration wizard has gathered so far, page by page (no Qt here).

The pages fill it in order: cameras and board, each camera's intrinsics (given or
calibrated), the extrinsic solution in its root camera's frame, the chosen world frame.
`posed` and `quality_report` are the same calls `triangulum calib extrinsics` makes, so the
wizard saves what the command would.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np

from calibration.boards import Board
from calibration.camera import Camera
from calibration.errors import TriangulumError
from calibration.extrinsics import ExtrinsicsOptions, ExtrinsicsResult, set_world_frame
from calibration.frames import FrameSource
from calibration.intrinsics import IntrinsicsOptions, IntrinsicsResult, ViewDetections
from calibration.report import QualityReport, build_report
from calibration.rig import Rig


def match_intrinsics(given: Rig, names: list[str]) -> tuple[dict[str, Camera], str]:
    """Cameras of an intrinsics file for these sources: by name, else in order when the counts
    match. -> ({source name: Camera renamed to it}, a note for the user or "")."""
    if all(n in given.names for n in names):
        return {n: given[n] for n in names}, ""
    if len(given) == len(names):
        cams = {n: Camera(n, c.size, c.K, c.dist, rmse=c.rmse) for c, n in zip(given.cameras, names, strict=True)}
        return cams, f"The intrinsics file's cameras {given.names} are taken for the sources {names} in this order."
    known = [n for n in names if n in given.names]
    missing = [n for n in names if n not in given.names]
    if not known:
        return {}, (f"The intrinsics file's cameras {given.names} match none of the sources {names}; rename the "
                    "sources (double-click a name) or calibrate them on the next page.")
    return {n: given[n] for n in known}, (
        f"The intrinsics file has no camera(s) {missing} (it has {given.names}); those are calibrated on the next page.")


@dataclass
class WizardState:
    """board: with the inverted choice applied; sources: one per camera, in order; step: use every
    step-th frame; given: intrinsics taken from a file, by camera; intrinsics: results calibrated
    here, by camera; extrinsics: the solution in its root camera's frame (never modified);
    world: the world-frame choice ("camera:NAME", "board:INSTANT" or "board:first"); pose_from:
    "board", or "person" (the cameras posed from the person instead: `person`, a PersonResult in a
    Z-up world on the floor, scaled by `height`)."""

    board: Board | None = None
    sources: list[FrameSource] = field(default_factory=list)
    step: int = 1
    given: dict[str, Camera] = field(default_factory=dict)
    given_path: str = ""
    given_metadata: dict = field(default_factory=dict)
    intrinsics_options: IntrinsicsOptions = field(default_factory=IntrinsicsOptions)
    intrinsics: dict[str, IntrinsicsResult] = field(default_factory=dict)
    views: dict[str, ViewDetections] = field(default_factory=dict)
    extrinsics_options: ExtrinsicsOptions = field(default_factory=ExtrinsicsOptions)
    extrinsics: ExtrinsicsResult | None = None
    timings: dict[str, float] = field(default_factory=dict)
    world: str = "board:first"
    revision: int = 0  # bumped whenever the cameras page changes its choices
    pose_from: str = "board"  # "board" (ChArUco) or "person" (calibration from the person, no board)
    height: float | None = 1.70  # the person's stature (m): the scale when posing from the person
    person: object | None = None  # calibration.from_person.PersonResult
    person_notes: list[str] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.sources]

    def camera(self, name: str) -> Camera | None:
        """The camera's intrinsics: calibrated here if done, else given, else None."""
        if name in self.intrinsics:
            return self.intrinsics[name].camera
        return self.given.get(name)

    @property
    def needs_intrinsics(self) -> list[str]:
        return [n for n in self.names if n not in self.given]

    @property
    def has_intrinsics(self) -> bool:
        return all(self.camera(n) is not None for n in self.names)

    @property
    def can_pose(self) -> bool:
        """Whether extrinsics can be solved: two cameras or more and a ChArUco board (or the person)."""
        if self.pose_from == "person":
            return len(self.sources) >= 2
        return len(self.sources) >= 2 and self.board is not None and self.board.kind == "charuco"

    def intrinsics_rig(self) -> Rig:
        """The cameras' intrinsics in source order (identity poses)."""
        missing = [n for n in self.names if self.camera(n) is None]
        if missing:
            raise TriangulumError(f"camera(s) {missing} have no intrinsics yet; calibrate them on the intrinsics page or give a file.")
        # As `calib extrinsics`: a file's metadata when it gave every camera, else none.
        meta = dict(self.given_metadata) if all(n in self.given and n not in self.intrinsics for n in self.names) else {}
        return Rig([self.camera(n) for n in self.names], meta)

    def posed(self, world: str | None = None) -> ExtrinsicsResult:
        """A copy of the extrinsic solution in the chosen world frame."""
        if self.extrinsics is None:
            raise TriangulumError("the cameras are not posed yet; run the extrinsics step first.")
        result = copy.deepcopy(self.extrinsics)
        set_world_frame(result, world or self.world)
        return result

    def world_spec_default(self) -> str:
        return "board:first" if self.extrinsics is not None and self.extrinsics.board_poses else f"camera:{self.names[0]}"


def quality_report(result: ExtrinsicsResult, board: Board, timings: dict[str, float]) -> tuple[QualityReport, np.ndarray]:
    """The report `triangulum calib extrinsics` writes for a posed result. -> (report, world points (N, 3))"""
    tracks, frames, world = result.tracks()
    errors = {n: result.errors[result.obs.camera == c] for c, n in enumerate(result.rig.names)}
    report = build_report(result.rig, tracks, frames, errors, result.warnings,
                          {"timings_s": dict(timings), "board": board.describe(), "made_by": "calibration wizard"})
    return report, world
