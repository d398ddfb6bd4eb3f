"""2D keypoints from other detectors (and our own), read into a take that `triangulum process
--keypoints` reconstructs like videos: same association, left/right repair, triangulation,
filtering and exports, in the input's own skeleton.

Formats (one input per camera, matched to the calibration's cameras by name as videos are):
  openpose  a folder of OpenPose JSON files, one per frame (``*_000000000012_keypoints.json``:
            the frame is the last number in the name), ``people[].pose_keypoints_2d`` =
            x, y, confidence per joint; x = y = c = 0 marks a missing joint. BODY_25 (25 joints),
            BODY_25B (25: give --skeleton body25b), COCO-18 (18), or any skeleton of ours.
  mmpose    MMPose / RTMLib predictions as JSON: a list of frames ``{"frame_id": i,
            "instances": [{"keypoints": [[x, y], ...], "keypoint_scores": [...]}]}`` (also
            wrapped as ``{"instance_info": [...]}``), or npz with ``keypoints`` (F, P, J, 2) and
            ``keypoint_scores`` (F, P, J); COCO-17 (17) or HALPE-26 (26).
  dlc       DeepLabCut CSV or .h5 (one per camera; .h5 needs pandas and PyTables): header rows scorer / [individuals /] bodyparts / coords
            (x, y, likelihood), one row per frame; single- and multi-animal. Body parts are named
            anatomically by what they say (``LeftKnee``, ``knee_l``, ``r_wrist``, ``Nose``...) into
            a skeleton of their own (it needs both hips); a part no rule recognises is an error
            that lists the names we know.
  npz       our `triangulum detect2d` file (every camera in one file: ``<camera>/keypoints``
            (F, 33, 3) with confidence).

Skeleton by joint count unless --skeleton says (25 is BODY_25 unless told BODY_25B). Bad files
get our error naming the file (and the frame).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.process.inputs import Take, match_videos
from calibration.errors import TriangulumError
from calibration.formats import convert
from calibration.takes import VideoInfo
from engines.skeleton import Skeleton, get_skeleton
from engines.tracker import ViewPeople

FORMATS = ("openpose", "mmpose", "dlc", "npz")
BY_COUNT = {25: "body25", 18: "coco18", 17: "coco17", 26: "halpe26", 33: "blazepose33"}


@dataclass
class CameraKeypoints:
    """One camera's 2D: frames[k] is (P, J, 3) x, y (px), confidence of the people in frame k
    (NaN x, y where a joint is missing); source: the file or folder it came from; joint_names:
    the joints as the file names them (DeepLabCut's body parts), None where the count tells."""

    camera: str
    frames: list[np.ndarray]
    source: Path
    joint_names: tuple[str, ...] | None = None


def _frame_number(path: Path) -> int:
    numbers = re.findall(r"\d+", path.name.replace("_keypoints", ""))
    if not numbers:
        raise TriangulumError(f"{path}: no frame number in the file name (OpenPose writes "
                              "NAME_000000000012_keypoints.json).")
    return int(numbers[-1])


def _people(flat: list, joints: int | None, where: str) -> np.ndarray:
    a = np.asarray(flat, dtype=np.float64)
    if a.size % 3 or (joints is not None and a.size != 3 * joints):
        raise TriangulumError(f"{where}: pose_keypoints_2d has {a.size} values, not 3 per joint"
                              + (f" of {joints} joints" if joints else "") + ".")
    a = a.reshape(-1, 3)
    a[(a[:, 2] <= 0) | ((a[:, 0] == 0) & (a[:, 1] == 0)), :2] = np.nan  # OpenPose's "not found"
    return a


def read_openpose(folder: Path, camera: str) -> CameraKeypoints:
    """An OpenPose JSON folder -> CameraKeypoints (frames numbered from the first file's)."""
    files = sorted(folder.glob("*.json"), key=_frame_number)
    if not files:
        raise TriangulumError(f"{folder} holds no OpenPose .json files; give the folder OpenPose wrote "
                              "with --write_json.")
    first = _frame_number(files[0])
    frames: list[np.ndarray] = []
    joints = None
    for path in files:
        k = _frame_number(path) - first
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            people = [p["pose_keypoints_2d"] for p in data["people"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise TriangulumError(f"{path} (frame {k}) is not an OpenPose JSON file "
                                  f"(people[].pose_keypoints_2d): {exc}.") from None
        arrays = [_people(p, joints, f"{path} (frame {k})") for p in people]
        if arrays and joints is None:
            joints = len(arrays[0])
        while len(frames) < k:
            frames.append(np.zeros((0, joints or 0, 3)))
        frames.append(np.stack(arrays) if arrays else np.zeros((0, joints or 0, 3)))
    if joints is None:
        raise TriangulumError(f"{folder}: no person in any frame.")
    frames = [f if len(f) else np.zeros((0, joints, 3)) for f in frames]
    return CameraKeypoints(camera, frames, folder)


def read_mmpose(path: Path, camera: str) -> CameraKeypoints:
    """MMPose / RTMLib predictions (JSON or npz) -> CameraKeypoints."""
    frames: list[np.ndarray] = []
    try:
        if path.suffix.lower() == ".npz":
            with np.load(path) as z:
                kp, sc = z["keypoints"], z["keypoint_scores"]
            for f in range(len(kp)):
                frames.append(np.concatenate([kp[f], sc[f][..., None]], -1).astype(np.float64))
        else:
            data = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(data, dict):
                data = data.get("instance_info", data.get("predictions", data))
            for i, frame in enumerate(data):
                k = int(frame.get("frame_id", i)) if isinstance(frame, dict) else i
                instances = frame["instances"] if isinstance(frame, dict) else frame
                people = [np.concatenate([np.asarray(p["keypoints"], float)[:, :2],
                                          np.asarray(p["keypoint_scores"], float)[:, None]], 1) for p in instances]
                while len(frames) < k:
                    frames.append(None)
                frames.append(np.stack(people) if people else None)
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise TriangulumError(f"{path} is not MMPose/RTMLib predictions (frames of instances with keypoints "
                              f"and keypoint_scores): {exc}.") from None
    joints = next((f.shape[1] for f in frames if f is not None and len(f)), None)
    if joints is None:
        raise TriangulumError(f"{path}: no person in any frame.")
    out = []
    for k, f in enumerate(frames):
        if f is None or not len(f):
            f = np.zeros((0, joints, 3))
        if f.shape[1:] != (joints, 3):
            raise TriangulumError(f"{path}, frame {k}: {f.shape[1]} keypoints where the others have {joints}.")
        f = f.copy()
        f[f[..., 2] <= 0, :2] = np.nan
        out.append(f)
    return CameraKeypoints(camera, out, path)


_PARTS = {"shoulder": "shoulder", "elbow": "elbow", "wrist": "wrist", "hand": "wrist", "hip": "hip",
          "knee": "knee", "ankle": "ankle", "heel": "heel", "eye": "eye", "ear": "ear", "bigtoe": "big_toe",
          "toe": "big_toe", "smalltoe": "small_toe"}
_CENTRE = {"nose": "nose", "neck": "neck", "head": "head_top", "headtop": "head_top", "top": "head_top",
           "pelvis": "pelvis", "midhip": "pelvis", "hipcentre": "pelvis", "hipcenter": "pelvis", "chip": "pelvis"}


def anatomical_name(part: str) -> str | None:
    """Our joint name for a body part named freely (LeftKnee, knee_l, r-wrist, LBigToe, Nose), or None."""
    words = [w for w in re.split(r"[^a-z0-9]+", re.sub(r"([a-z])([A-Z])", r"\1_\2", part).lower()) if w]
    flat = "".join(words)
    if flat in _CENTRE:
        return _CENTRE[flat]
    side = None
    for w in (words[0], words[-1]) if words else ():
        if w in ("left", "l", "right", "r"):
            side = "left" if w[0] == "l" else "right"
            words = [x for x in words if x != w] if len(words) > 1 else words
            break
    if side is None and len(flat) > 1 and flat[0] in "lr" and flat[1:] in _PARTS:  # LKnee, rhip
        side, words = ("left" if flat[0] == "l" else "right"), [flat[1:]]
    rest = "".join(words)
    if side is None or rest not in _PARTS:
        return None
    return f"{side}_{_PARTS[rest]}"


def read_dlc(path: Path, camera: str) -> tuple[CameraKeypoints, tuple[str, ...]]:
    """A DeepLabCut CSV -> CameraKeypoints and the joint names (in file order)."""
    import csv
    import io

    try:
        if path.suffix.lower() in (".h5", ".hdf5"):  # the same table; pandas writes it as DLC's CSV
            try:
                import pandas as pd

                text = pd.read_hdf(path).to_csv()
            except ImportError:
                raise TriangulumError(f"{path}: reading DeepLabCut .h5 files needs pandas and PyTables "
                                      "(pip install pandas tables), or give DeepLabCut's CSV.") from None
        else:
            text = path.read_text(encoding="utf-8")
        rows = list(csv.reader(io.StringIO(text)))
    except OSError as exc:
        raise TriangulumError(f"Cannot read DeepLabCut file {path}: {exc.strerror}.") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise TriangulumError(f"{path} is not a DeepLabCut table: {exc}.") from None
    heads = {r[0].strip().lower(): r for r in rows[:4] if r}
    if "bodyparts" not in heads or "coords" not in heads:
        raise TriangulumError(f"{path} is not a DeepLabCut CSV (no bodyparts and coords header rows).")
    parts, coords = heads["bodyparts"][1:], heads["coords"][1:]
    people = heads["individuals"][1:] if "individuals" in heads else ["single"] * len(parts)
    names = list(dict.fromkeys(parts))
    joints = [anatomical_name(p) for p in names]
    unknown = [p for p, j in zip(names, joints, strict=True) if j is None]
    if unknown:
        raise TriangulumError(f"{path}: body part(s) {', '.join(unknown)} have no anatomical name we recognise; "
                              "rename them in the CSV header (e.g. LeftKnee, right_wrist, Nose, pelvis).")
    individuals = list(dict.fromkeys(people))
    start = 1 + max(i for i, r in enumerate(rows[:4]) if r and r[0].strip().lower() == "coords")
    frames = []
    for n, row in enumerate(rows[start:], start=start + 1):
        if not row:
            continue
        a = np.full((len(individuals), len(names), 3), np.nan)
        for value, part, coord, who in zip(row[1:], parts, coords, people, strict=False):
            if coord not in ("x", "y", "likelihood"):
                continue
            try:
                v = float(value) if value.strip() else np.nan
            except ValueError:
                raise TriangulumError(f"{path}, line {n}: {value!r} is not a number.") from None
            a[individuals.index(who), names.index(part), ("x", "y", "likelihood").index(coord)] = v
        a[..., 2] = np.nan_to_num(a[..., 2])
        a[a[..., 2] <= 0, :2] = np.nan
        frames.append(a[np.isfinite(a[..., 0]).any(-1)])
    return CameraKeypoints(camera, frames, path, tuple(joints)), tuple(joints)


def read_detect2d(path: Path) -> list[CameraKeypoints]:
    """Our detect2d npz -> one CameraKeypoints per camera (one person per frame)."""
    try:
        with np.load(path) as z:
            cameras = sorted({k.split("/")[0] for k in z.files if k.endswith("/keypoints")})
            out = []
            for cam in cameras:
                kp = z[f"{cam}/keypoints"].astype(np.float64)
                out.append(CameraKeypoints(cam, [f[None] if np.isfinite(f[:, :2]).any() else np.zeros((0,) + f.shape)
                                                 for f in kp], path))
    except (OSError, ValueError, KeyError) as exc:
        raise TriangulumError(f"{path} is not a `triangulum detect2d` file: {exc}.") from None
    if not out:
        raise TriangulumError(f"{path} holds no <camera>/keypoints arrays; write it with `triangulum detect2d`.")
    return out


def read_keypoints(paths: list[Path], fmt: str, camera_names: list[str], calibration: str) -> list[CameraKeypoints]:
    """Every input of `--keypoints`, each matched to a calibrated camera by name."""
    if fmt not in FORMATS:
        raise TriangulumError(f"Unknown keypoint format {fmt!r}; choose {', '.join(FORMATS)}.")
    for p in paths:
        if not p.exists():
            raise TriangulumError(f"{p} does not exist; give one keypoint folder or file per camera.")
    if fmt == "npz":
        if len(paths) != 1:
            raise TriangulumError("--keypoint-format npz takes the one file `triangulum detect2d` wrote.")
        return read_detect2d(paths[0])
    if len(paths) == 1 and paths[0].is_dir() and fmt == "openpose" and not any(paths[0].glob("*.json")):
        paths = sorted(p for p in paths[0].iterdir() if p.is_dir())  # a folder of per-camera folders

    matched = match_videos(paths, camera_names, calibration, kind="keypoint input")
    if fmt == "dlc":
        return [read_dlc(path, cam)[0] for cam, path in matched.items()]
    reader = read_openpose if fmt == "openpose" else read_mmpose
    return [reader(path, cam) for cam, path in matched.items()]


def keypoint_take(paths: list[Path], fmt: str, calib: Path, fps: float, skeleton: str | None = None,
                  calib_units: str = "auto") -> tuple[Take, list[list[ViewPeople]], Skeleton]:
    """The take, each frame set's 2D people per camera (rig order) and their skeleton."""
    if not (fps > 0):
        raise TriangulumError(f"--fps {fps} must be a positive frame rate; keypoint files carry none.")
    warnings: list[str] = []
    rig = convert(calib, units=calib_units, notes=warnings)
    cams = read_keypoints(paths, fmt, rig.names, str(calib))
    unknown = [c.camera for c in cams if c.camera not in rig.names]
    if unknown:
        raise TriangulumError(f"keypoints for camera(s) {unknown}, which the calibration {calib} lacks "
                              f"(it has {', '.join(rig.names)}).")
    if len(cams) < 2:
        raise TriangulumError(f"keypoints for {len(cams)} camera(s); triangulation needs at least two.")
    counts = {c.frames[0].shape[1] for c in cams}
    if len(counts) != 1:
        raise TriangulumError(f"the cameras' keypoints have different joint counts {sorted(counts)}; "
                              "give the same detector's output for every camera.")
    joints = counts.pop()
    if skeleton is None and cams[0].joint_names is not None:
        sk = _named_skeleton(cams)
    else:
        name = skeleton or BY_COUNT.get(joints)
        if name is None:
            raise TriangulumError(f"{joints} keypoints per person match no known skeleton; say which with --skeleton.")
        sk = get_skeleton(name)
    if sk.num_joints != joints:
        raise TriangulumError(f"--skeleton {sk.name} has {sk.num_joints} joints but the files have {joints}.")
    cams = sorted(cams, key=lambda c: rig.names.index(c.camera))
    rig = rig.subset([c.camera for c in cams]) if len(cams) < len(rig) else rig
    F = max(len(c.frames) for c in cams)
    index = np.array([[k if k < len(c.frames) else -1 for c in cams] for k in range(F)])
    times = np.arange(F) / fps
    views = [[_view(c.frames[k]) if k < len(c.frames) else ViewPeople.empty(joints) for c in cams]
             for k in range(F)]
    videos = [VideoInfo(c.camera, c.source, rig[c.camera].size, len(c.frames), fps) for c in cams]
    frame_times = np.where(index >= 0, times[:, None], np.nan)
    take = Take(rig, videos, index, times, fps, f"keypoints ({fmt}, {sk.name})", calib, frame_times,
                [fps] * len(cams), [], warnings)
    return take, views, sk


def _named_skeleton(cams: list[CameraKeypoints]) -> Skeleton:
    """The skeleton of the joints the files name (a DeepLabCut project's body parts, the same in
    every camera's file)."""
    from engines.detector_skeletons import custom_skeleton

    named = {c.joint_names for c in cams}
    if len(named) != 1:
        raise TriangulumError("the DeepLabCut files have different body parts; give one project's output per camera.")
    joints = named.pop()
    try:
        return custom_skeleton("dlc", joints)
    except ValueError as exc:
        raise TriangulumError(f"the DeepLabCut body parts cannot make a skeleton: {exc}.") from None


def _view(people: np.ndarray) -> ViewPeople:
    P = len(people)
    return ViewPeople(people[..., :2].copy(), np.nan_to_num(people[..., 2]), np.arange(P, dtype=np.int64),
                      np.ones(P))
