"""OpenSim TRC marker files: writer and an independent reader.

Layout (tab separated), as OpenSim and Pose2Sim write it::

    PathFileType  4  (X/Y/Z)  <file name>
    DataRate CameraRate NumFrames NumMarkers Units OrigDataRate OrigDataStartFrame OrigNumFrames
    <values>
    Frame#  Time  <marker 1>  ''  ''  <marker 2> ...
    ''      ''    X1 Y1 Z1 X2 Y2 Z2 ...
    <one row per frame; a missing marker is NaN NaN NaN>

Coordinates are Y up (OpenSim's convention): TRC (X, Y, Z) = world (Y, Z, X); metres.

Missing values are written ``NaN``, not as empty fields: OpenSim 4.6's TRC reader drops the
empty fields at the end of a line and then rejects the row ("Unexpected number of columns"),
so a take whose last marker is ever missing would be unreadable; ``NaN`` is read as missing by
OpenSim, Pose2Sim (pandas) and our reader alike.

Marker names: by default the names OpenSim setups expect (for BlazePose, Pose2Sim's
``Markers_BlazePose.xml``: ``LHip``, ``LBigToe``...), so Pose2Sim and OpenSim's tools read the
file as it is; ``names="triangulum"`` writes our joint names (``left_hip``...).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.export.conventions import check_take, text_rows, world_to_yup, yup_to_world
from calibration.errors import TriangulumError
from engines.skeleton import Skeleton

_HEADER_KEYS = (
    "DataRate", "CameraRate", "NumFrames", "NumMarkers", "Units",
    "OrigDataRate", "OrigDataStartFrame", "OrigNumFrames",
)


MARKER_NAMES = ("opensim", "triangulum")

# Pose2Sim's marker-set names (its OpenSim_Setup/Markers_*.xml); joints of ours that its
# marker set lacks get a name in the same style. Skeletons not listed keep our names.
_OPENSIM_NAMES: dict[str, dict[str, str]] = {
    "blazepose33": {
        "nose": "Nose", "left_eye_inner": "LEyeInner", "left_eye": "LEye",
        "left_eye_outer": "LEyeOuter", "right_eye_inner": "REyeInner", "right_eye": "REye",
        "right_eye_outer": "REyeOuter", "left_ear": "LEar", "right_ear": "REar",
        "mouth_left": "LMouth", "mouth_right": "RMouth",
        "left_foot_index": "LBigToe", "right_foot_index": "RBigToe",
    },
    "coco17": {},
    "body25": {"neck": "Neck", "pelvis": "CHip"},
    "body25b": {"neck": "Neck", "head_top": "Head"},
    "coco18": {"neck": "Neck"},
    "halpe26": {"neck": "Neck", "head_top": "Head", "pelvis": "Hip"},
}
_FACE = {"nose": "Nose", "left_eye": "LEye", "right_eye": "REye", "left_ear": "LEar", "right_ear": "REar"}
_LIMBS = ("shoulder", "elbow", "wrist", "hip", "knee", "ankle", "heel", "thumb", "pinky", "index",
          "big_toe", "small_toe")


def marker_names(skeleton: Skeleton, names: str = "opensim") -> tuple[str, ...]:
    """The TRC marker name of each of the skeleton's J joints, in joint order."""
    if names not in MARKER_NAMES:
        raise TriangulumError(f"Unknown TRC marker names {names!r}; choose {' or '.join(MARKER_NAMES)}.")
    table = _OPENSIM_NAMES.get(skeleton.name)
    if names == "triangulum" or table is None:
        return skeleton.joints
    limbs = {f"{s}_{limb}": s[0].upper() + "".join(w.capitalize() for w in limb.split("_"))
             for s in ("left", "right") for limb in _LIMBS}
    table = {**_FACE, **table}
    return tuple(table.get(j, limbs.get(j, j)) for j in skeleton.joints)


def write_trc(
    path: str | Path,
    joints: np.ndarray,
    skeleton: Skeleton,
    fps: float,
    start_time: float = 0.0,
    names: str = "opensim",
) -> Path:
    """Write a take (F, J, 3) world metres as a TRC file; frame i is Frame# i+1 at
    start_time + i / fps seconds; `names`: one of MARKER_NAMES. Returns the path."""
    joints = check_take(joints, skeleton, fps)
    labels = marker_names(skeleton, names)
    path = Path(path)
    frames, markers = joints.shape[:2]
    rate = f"{fps:g}"
    lines = [
        f"PathFileType\t4\t(X/Y/Z)\t{path.name}",
        "\t".join(_HEADER_KEYS),
        "\t".join([rate, rate, str(frames), str(markers), "m", rate, "1", str(frames)]),
        "\t".join(["Frame#", "Time"] + [f"{n}\t\t" for n in labels]).rstrip("\t") + "\t\t",
        "\t\t" + "\t".join(f"X{k}\tY{k}\tZ{k}" for k in range(1, markers + 1)),
    ]
    rows = text_rows(world_to_yup(joints).reshape(frames, -1), "\t", missing="NaN")
    for i, row in enumerate(rows):
        lines.append(f"{i + 1}\t{start_time + i / fps:.6f}\t{row}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@dataclass(frozen=True)
class TrcData:
    """Contents of a TRC file. points: (F, M, 3) metres in the file's (Y-up) axes, NaN missing;
    frame_numbers, times: (F,); header: the key/value pairs of lines 2-3."""

    names: tuple[str, ...]
    rate: float
    units: str
    frame_numbers: np.ndarray
    times: np.ndarray
    points: np.ndarray
    header: dict[str, str]

    @property
    def world(self) -> np.ndarray:
        """(F, M, 3) points in the Z-up world frame."""
        return yup_to_world(self.points)


def _float(cell: str) -> float:
    cell = cell.strip()
    return float(cell) if cell else float("nan")


def read_trc(path: str | Path) -> TrcData:
    """Read a TRC file (any marker set; units m or mm, returned in metres)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise TriangulumError(f"Cannot read TRC file {path}: {exc.strerror}.") from None
    if len(lines) < 5 or not lines[0].startswith("PathFileType"):
        raise TriangulumError(f"{path} is not a TRC file (no PathFileType header); check the path.")
    keys = lines[1].split("\t")
    values = lines[2].split("\t")
    header = {k.strip(): v.strip() for k, v in zip(keys, values, strict=False)}
    try:
        rate = float(header["DataRate"])
        count = int(header["NumMarkers"])
    except (KeyError, ValueError):
        raise TriangulumError(f"{path}: header lacks a valid DataRate or NumMarkers.") from None
    names = tuple(c.strip() for c in lines[3].split("\t")[2:] if c.strip())
    if len(names) != count:
        raise TriangulumError(f"{path}: NumMarkers is {count} but {len(names)} names are listed.")
    units = header.get("Units", "m").lower()
    scale = {"m": 1.0, "mm": 1e-3, "cm": 1e-2}.get(units)
    if scale is None:
        raise TriangulumError(f"{path}: unknown Units {units!r}; expected m, cm or mm.")
    rows = []
    for number, line in enumerate(lines[5:], start=6):
        if not line.strip():
            continue
        cells = line.split("\t")
        cells += [""] * (2 + 3 * count - len(cells))
        try:
            rows.append([_float(c) for c in cells[: 2 + 3 * count]])
        except ValueError:
            raise TriangulumError(f"{path}, line {number}: a value is not a number.") from None
    table = np.array(rows, dtype=np.float64).reshape(len(rows), 2 + 3 * count)
    return TrcData(
        names=names,
        rate=rate,
        units=units,
        frame_numbers=table[:, 0].astype(np.int64),
        times=table[:, 1],
        points=table[:, 2:].reshape(len(rows), count, 3) * scale,
        header=header,
    )
