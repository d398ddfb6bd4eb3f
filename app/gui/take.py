"""The poses of one run, kept for export: joints per frame, written as TRC/BVH/C3D/CSV.

Played media gives each pose the index of its frame set, so the take is frame-exact at the
media's frame rate (frames never processed stay NaN). Live capture gives poses at the
pipeline's own pace: they are written in order at their measured mean rate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from app.capture.frames import PoseFrame
from app.export import FORMATS, export_all
from app.gui.overlays import skeleton_for
from app.process.take import TemporalConfig, smooth
from calibration.errors import TriangulumError
from engines.temporal import ButterworthConfig, GapFillConfig, describe


class Take:
    """Poses by frame index. frame_indexed: indices are media frame sets (else arrival order)."""

    def __init__(self, frame_indexed: bool, fps: float | None = None) -> None:
        self.frame_indexed = frame_indexed
        self.media_fps = fps
        self.joint_names: tuple[str, ...] = ()
        self._joints: dict[int, np.ndarray] = {}
        self._times: dict[int, float] = {}
        self.filled: set[int] = set()  # keys of poses filled in between computed ones

    def add(self, pose: PoseFrame) -> None:
        """Keep a pose with joints (preview poses without joints are ignored)."""
        if pose.joints3d.size == 0:
            return
        if pose.joint_names != self.joint_names:
            if self._joints:
                raise TriangulumError("the skeleton changed during the take; export it and start a new one.")
            self.joint_names = pose.joint_names
        key = pose.index if self.frame_indexed else len(self._joints)
        self._joints[key] = np.asarray(pose.joints3d, np.float64)
        self._times[key] = pose.t_capture
        if pose.filled:
            self.filled.add(key)

    def __len__(self) -> int:
        return len(self._joints)

    def copy(self) -> Take:
        """A snapshot that later poses do not change (for exporting on another thread)."""
        out = Take(self.frame_indexed, self.media_fps)
        out.joint_names = self.joint_names
        out._joints = dict(self._joints)
        out._times = dict(self._times)
        out.filled = set(self.filled)
        return out

    def clear(self) -> None:
        self._joints.clear()
        self._times.clear()
        self.filled.clear()
        self.joint_names = ()

    @property
    def fps(self) -> float:
        """The take's frame rate: the media's, or the mean pose rate of a live take."""
        if self.frame_indexed and self.media_fps:
            return float(self.media_fps)
        times = np.sort(np.array(list(self._times.values())))
        if len(times) < 2 or times[-1] <= times[0]:
            return 1.0
        return float((len(times) - 1) / (times[-1] - times[0]))

    def joints(self) -> np.ndarray:
        """(F, J, 3) metres from the first to the last frame kept, NaN where none was computed."""
        if not self._joints:
            raise TriangulumError("there are no poses to export yet; load a calibration and play or capture first.")
        keys = sorted(self._joints)
        first, last = keys[0], keys[-1]
        J = len(self.joint_names)
        out = np.full((last - first + 1, J, 3), np.nan)
        for k in keys:
            out[k - first] = self._joints[k]
        return out


@dataclass
class ExportRequest:
    """folder and stem of the files; formats among app.export.FORMATS (and OPTIONAL_FORMATS);
    fill_gaps and butterworth: offline clean-up before writing (None: none); kinematics:
    also scale an OpenSim model and write joint angles (app.kinematics) into kinematics/."""

    folder: Path
    stem: str = "take"
    formats: tuple[str, ...] = FORMATS
    fill_gaps: GapFillConfig | None = field(default_factory=GapFillConfig)
    butterworth: ButterworthConfig | None = None
    kinematics: bool = False


def export_take(take: Take, request: ExportRequest, metadata: dict | None = None, rig=None) -> dict[str, Path]:
    """Write the take in the requested formats plus a JSON sidecar (and, if asked, OpenSim joint
    angles: key "kinematics", the .mot); rig: the calibration, for the .blend's cameras.
    Returns {format: path}."""
    skeleton = skeleton_for(take.joint_names)
    if skeleton is None:
        raise TriangulumError(f"the poses use joints {take.joint_names[:3]}... that no export skeleton knows.")
    if not request.formats:
        raise TriangulumError("choose at least one export format (TRC, BVH, C3D or CSV).")
    joints, fps = take.joints(), take.fps
    # The same whole-take clean-up as `triangulum process` (app.process.take.smooth).
    temporal = TemporalConfig(gap_fill=request.fill_gaps, butterworth=request.butterworth, one_euro=None)
    joints = smooth(joints, np.arange(len(joints)) / fps, fps, temporal)
    steps: dict = {}
    if request.fill_gaps is not None:
        steps["fill_gaps"] = describe(request.fill_gaps)
    if request.butterworth is not None:
        steps["butterworth"] = describe(request.butterworth)
    info = {"source": "triangulum gui", "frames_with_pose": len(take), "filters": steps, **(metadata or {})}
    if take.filled:  # frames (0 = the first exported) whose pose was filled in, not computed
        first = min(take._joints)
        info["filled_frames"] = sorted(k - first for k in take.filled)
    paths = export_all(request.folder, joints, skeleton, fps, tuple(request.formats), request.stem, info, rig=rig)
    if request.kinematics:
        from app.kinematics import take_kinematics

        paths["kinematics"] = take_kinematics(joints, skeleton, fps, request.folder / "kinematics", request.stem).motion
    return paths
