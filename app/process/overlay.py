"""Overlay videos, one per camera: what the detector saw and what the 3D result says.

Drawn on every frame:
- every 2D person the detector tracked in that view, thin grey (as detected, before any
  left/right correction);
- every reconstructed person's 3D joints projected into the view, bones in the person's
  colour, joints coloured by their reprojection error against that view's 2D (green under
  10 px, yellow under 20 px, red above; white where the view did not see the joint);
- the person's ID beside the head, "L/R fixed" when this view's labels were swapped;
- a header with the camera, frame number and legend.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from app.process.reader import frame_sets
from app.process.take import TakeResult
from calibration.errors import TriangulumError

ERROR_COLOURS = ((10.0, (60, 200, 60)), (20.0, (0, 215, 255)), (np.inf, (40, 40, 230)))  # BGR
NOT_SEEN = (255, 255, 255)
DETECTION = (170, 170, 170)
PERSON_COLOURS = [(255, 128, 0), (255, 0, 200), (0, 200, 255), (120, 255, 0), (0, 80, 255), (200, 200, 0)]


def error_colour(err: float) -> tuple[int, int, int]:
    if not np.isfinite(err):
        return NOT_SEEN
    return next(colour for limit, colour in ERROR_COLOURS if err < limit)


def _pt(p: np.ndarray, scale: float) -> tuple[int, int]:
    return int(round(p[0] * scale)), int(round(p[1] * scale))


def draw_frame(image: np.ndarray, result: TakeResult, frame: int, view: int, scale: float) -> np.ndarray:
    """One camera's overlay for processed frame `frame` (index into result.frames)."""
    sk = result.skeleton
    h, w = image.shape[:2]
    img = cv2.resize(image, (int(round(w * scale)), int(round(h * scale))), interpolation=cv2.INTER_AREA)
    thick = max(1, int(round(3 * scale)))
    people2d = result.frames[frame].views[view]
    for kp in people2d.keypoints:
        for a, b in sk.bones:
            if np.isfinite(kp[[a, b]]).all():
                cv2.line(img, _pt(kp[a], scale), _pt(kp[b], scale), DETECTION, max(1, thick // 2), cv2.LINE_AA)
    for person in result.people:
        joints = person.final.reprojected[view, frame]  # (J, 2)
        errors = person.final.errors[view, frame]
        colour = PERSON_COLOURS[person.person_id % len(PERSON_COLOURS)]
        for a, b in sk.bones:
            if np.isfinite(joints[[a, b]]).all():
                cv2.line(img, _pt(joints[a], scale), _pt(joints[b], scale), colour, thick, cv2.LINE_AA)
        for j in range(sk.num_joints):
            if np.isfinite(joints[j]).all():
                cv2.circle(img, _pt(joints[j], scale), thick + 2, error_colour(errors[j]), -1, cv2.LINE_AA)
        head = joints[sk.index["nose"]]
        if np.isfinite(head).all():
            x, y = _pt(head, scale)
            label = f"P{person.person_id}" + (" main" if person.person_id == result.main else "")
            if any(flags[frame, view] for flags in person.flips.values()):
                label += "  L/R fixed"
            cv2.putText(img, label, (x + 12, y - 12), cv2.FONT_HERSHEY_SIMPLEX, 0.5 + scale * 0.5, colour,
                        thick, cv2.LINE_AA)
    header = f"{result.take.cameras[view]}  frame {result.frames[frame].index}   reprojection:"
    cv2.rectangle(img, (0, 0), (img.shape[1], 28), (0, 0, 0), -1)
    cv2.putText(img, header, (6, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    x = 12 + cv2.getTextSize(header, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)[0][0]
    for text, colour in (("<10px", ERROR_COLOURS[0][1]), ("<20px", ERROR_COLOURS[1][1]), (">20px", ERROR_COLOURS[2][1])):
        cv2.circle(img, (x + 6, 14), 6, colour, -1)
        cv2.putText(img, text, (x + 16, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
        x += 70
    return img


def write_overlays(result: TakeResult, outdir: Path, scale: float = 0.5,
                   progress: Callable[[int, int], None] | None = None) -> list[Path]:
    """overlay_<camera>.mp4 for every camera (MPEG-4 part 2, at `scale` of the video size)."""
    if not result.frames:
        return []
    take = result.take
    start, stop = result.frames[0].index, result.frames[-1].index + 1
    writers: dict[int, cv2.VideoWriter] = {}
    paths = [outdir / f"overlay_{cam}.mp4" for cam in take.cameras]
    try:
        for k, fs in enumerate(frame_sets(take, start, stop)):
            by_camera = {f.camera: f.image for f in fs.frames}
            for v, cam in enumerate(take.cameras):
                if cam not in by_camera:
                    continue
                img = draw_frame(by_camera[cam], result, k, v, scale)
                if v not in writers:
                    writer = cv2.VideoWriter(str(paths[v]), cv2.VideoWriter_fourcc(*"mp4v"), take.camera_fps[v],
                                             (img.shape[1], img.shape[0]))
                    if not writer.isOpened():
                        raise TriangulumError(f"cannot write {paths[v]}: OpenCV has no MPEG-4 encoder here; "
                                              "run with --no-overlays.")
                    writers[v] = writer
                writers[v].write(img)
            if progress is not None:
                progress(k + 1, stop - start)
    finally:
        for writer in writers.values():
            writer.release()
    return [paths[v] for v in sorted(writers)]
