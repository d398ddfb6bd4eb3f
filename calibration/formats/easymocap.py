"""EasyMocap / OpenCV `intri.yml` + `extri.yml` (cv2.FileStorage YAML).

intri.yml: ``names`` (a list), then per camera ``K_<name>`` (3x3) and
``dist_<name>`` (1x5 or 1x4; EasyMocap also reads ``D_<name>``), and optionally
``H_<name>``, ``W_<name>`` (image height and width in px).
extri.yml: ``names``, then per camera ``R_<name>`` (3x1 Rodrigues, world->camera),
``Rot_<name>`` (the same rotation as a 3x3 matrix) and ``T_<name>`` (3x1, metres).

EasyMocap does not always store the image size. When a file has no ``H_``/``W_``
the size comes from the caller (``--size W H``) or, failing that, is inferred from
the principal point as (2 cx + 1, 2 cy + 1) px (exact for a centred principal point
under OpenCV's pixel-centre convention) and the rig's metadata says so
(``size_source``). We always write ``H_`` and ``W_``, which EasyMocap reads.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np

from calibration.camera import Camera
from calibration.errors import TriangulumError
from calibration.formats import fields
from calibration.rig import Rig
from calibration.rig_io import rotation_from_field

log = logging.getLogger(__name__)

INTRI, EXTRI = "intri.yml", "extri.yml"
# cv2.FileStorage accepts only these characters in a key.
_KEY = re.compile(r"^[A-Za-z0-9_\-]+$")


def locate(path: str | Path) -> tuple[Path, Path]:
    """The (intri, extri) pair for a folder or for either file of the pair."""
    path = Path(path)
    if path.is_dir():
        intri, extri = path / INTRI, path / EXTRI
    elif "extri" in path.name:
        intri, extri = path.with_name(path.name.replace("extri", "intri")), path
    elif "intri" in path.name:
        intri, extri = path, path.with_name(path.name.replace("intri", "extri"))
    else:
        # Any other name: the pair is expected beside it under the standard names.
        intri, extri = path.with_name(INTRI), path.with_name(EXTRI)
    for p in (intri, extri):
        if not p.is_file():
            raise TriangulumError(
                f"{path}: EasyMocap calibrations are two files, {INTRI} and {EXTRI}, side by side; {p} is missing."
            )
    return intri, extri


class _Yaml:
    """A read-only cv2.FileStorage whose failures become TriangulumErrors naming the file."""

    def __init__(self, path: Path) -> None:
        self.source = str(path)
        try:
            self.fs = cv2.FileStorage(str(path), cv2.FILE_STORAGE_READ)
            opened = self.fs.isOpened()
        except (cv2.error, SystemError) as exc:
            raise TriangulumError(f"{path}: not a readable OpenCV YAML file ({_cv_reason(exc)}); "
                                  "it is truncated or damaged.") from None
        if not opened:
            raise TriangulumError(f"{path}: cannot be opened as an OpenCV YAML file.")

    def node(self, key: str) -> cv2.FileNode | None:
        try:
            node = self.fs.getNode(key)
        except (cv2.error, SystemError) as exc:
            raise TriangulumError(f"{self.source}: field '{key}' cannot be read ({_cv_reason(exc)}); "
                                  "the file is truncated or damaged.") from None
        return None if node.empty() or node.isNone() else node

    def names(self) -> list[str]:
        node = self.node("names")
        if node is None or not node.isSeq():
            fields.fail(self.source, None, "names", "is missing (expected the list of camera names)")
        out = []
        for i in range(node.size()):
            item = node.at(i)
            # EasyMocap writes names as strings, but a hand-written list may hold numbers.
            out.append(item.string() if item.isString() else f"{int(item.real())}")
        return out

    def matrix(self, key: str, camera: str, shapes: tuple[tuple[int, ...], ...]) -> np.ndarray | None:
        node = self.node(key)
        if node is None:
            return None
        try:
            value = node.mat()
        except (cv2.error, SystemError):
            value = None
        if value is None:
            fields.fail(self.source, camera, key, "is not an OpenCV matrix (the file may be truncated)")
        return fields.array(value, self.source, camera, key, shapes)

    def integer(self, key: str, camera: str) -> int | None:
        node = self.node(key)
        if node is None:
            return None
        if not node.isInt() and not node.isReal():
            fields.fail(self.source, camera, key, "is not a number")
        return int(round(node.real()))


def _cv_reason(exc: BaseException) -> str:
    cause = exc.__cause__ if isinstance(exc, SystemError) and exc.__cause__ else exc
    text = str(cause).strip().splitlines()[-1] if str(cause).strip() else type(cause).__name__
    return text.split(") ", 1)[-1] if text.startswith("OpenCV(") else text


def read_easymocap(path: str | Path, size: tuple[int, int] | None = None) -> Rig:
    """Read an EasyMocap calibration: a folder, `intri.yml` or `extri.yml`.

    size: (W, H) px for every camera when the files do not store it.
    """
    intri_path, extri_path = locate(path)
    intri, extri = _Yaml(intri_path), _Yaml(extri_path)
    sources = set()
    cameras = [_camera(name, intri, extri, size, sources) for name in intri.names()]
    meta = {"source": intri_path.parent.name or str(intri_path.parent), "source_format": "easymocap",
            "size_source": ", ".join(sorted(sources)) if sources else "file"}
    return fields.rig(intri.source, cameras, meta)


def _camera(name: str, intri: _Yaml, extri: _Yaml, size: tuple[int, int] | None, sources: set[str]) -> Camera:
    K = intri.matrix(f"K_{name}", name, ((3, 3),))
    if K is None:
        fields.fail(intri.source, name, f"K_{name}", "is missing")
    fields.check_focal(K[0, 0], intri.source, name, f"K_{name}")
    fields.check_focal(K[1, 1], intri.source, name, f"K_{name}")
    dist_shapes = ((1, 4), (1, 5), (4, 1), (5, 1), (4,), (5,))
    dist = intri.matrix(f"dist_{name}", name, dist_shapes)
    if dist is None:
        dist = intri.matrix(f"D_{name}", name, dist_shapes)
    if dist is None:
        fields.fail(intri.source, name, f"dist_{name}", "is missing")

    rvec = extri.matrix(f"R_{name}", name, ((3, 1), (1, 3), (3,)))
    rot = extri.matrix(f"Rot_{name}", name, ((3, 3),))
    if rvec is None and rot is None:
        fields.fail(extri.source, name, f"R_{name}", "is missing")
    # The matrix wins when both are there: it round-trips without Rodrigues round-off.
    R = rot if rot is not None else rotation_from_field(rvec.reshape(3), f"{extri.source}: camera '{name}'")
    if rot is not None:
        fields.check_rotation(rot, extri.source, name, f"Rot_{name}")
        if rvec is not None:
            gap = np.abs(rotation_from_field(rvec.reshape(3), extri.source) - rot).max()
            if gap > fields.ROTATION_TOLERANCE:
                fields.fail(extri.source, name, f"Rot_{name}", f"disagrees with R_{name} by {gap:.2g}; "
                            "the two must be the same rotation")
    t = extri.matrix(f"T_{name}", name, ((3, 1), (1, 3), (3,)))
    if t is None:
        fields.fail(extri.source, name, f"T_{name}", "is missing")

    W, H = intri.integer(f"W_{name}", name), intri.integer(f"H_{name}", name)
    stored = W is not None and H is not None and W > 0 and H > 0  # EasyMocap uses -1 for "unknown"
    if stored:
        if size is not None and tuple(size) != (W, H):
            fields.fail(intri.source, name, f"W_{name}", f"and H_{name} give {W}x{H} px but the size given is "
                        f"{size[0]}x{size[1]}; leave the size out or fix the file")
        wh = (W, H)
    elif size is not None:
        wh = (int(size[0]), int(size[1]))
        sources.add("given")
    else:
        wh = (int(round(2 * K[0, 2] + 1)), int(round(2 * K[1, 2] + 1)))
        sources.add("principal point")
        log.warning("%s: camera '%s' has no image size; assuming %dx%d px from its principal point "
                    "(pass --size W H to set it).", intri.source, name, *wh)
    return fields.camera(intri.source, name, wh, K, dist.ravel(), R, t.ravel())


def write_easymocap(rig: Rig, folder: str | Path) -> tuple[Path, Path]:
    """Write `intri.yml` and `extri.yml` into `folder` -> their paths."""
    folder = Path(folder)
    for cam in rig.cameras:
        if not _KEY.match(cam.name):
            raise TriangulumError(f"camera '{cam.name}': its name cannot be a key in an OpenCV YAML file; "
                                  "rename it with letters, digits, '_' or '-' only.")
    folder.mkdir(parents=True, exist_ok=True)
    intri_path, extri_path = folder / INTRI, folder / EXTRI
    with _writer(intri_path) as fs:
        _write_names(fs, rig.names)
        for cam in rig.cameras:
            fs.write(f"K_{cam.name}", cam.K)
            fs.write(f"dist_{cam.name}", cam.dist.reshape(1, 5))
            fs.write(f"H_{cam.name}", int(cam.size[1]))
            fs.write(f"W_{cam.name}", int(cam.size[0]))
    with _writer(extri_path) as fs:
        _write_names(fs, rig.names)
        for cam in rig.cameras:
            fs.write(f"R_{cam.name}", cam.rvec.reshape(3, 1))
            fs.write(f"Rot_{cam.name}", cam.R)
            fs.write(f"T_{cam.name}", cam.t.reshape(3, 1))
    return intri_path, extri_path


@contextmanager
def _writer(path: Path) -> Iterator[cv2.FileStorage]:
    """cv2.FileStorage for writing, released on exit (it writes nothing until then)."""
    fs = cv2.FileStorage(str(path), cv2.FILE_STORAGE_WRITE)
    if not fs.isOpened():
        raise TriangulumError(f"{path}: cannot be written; check that the folder is writable.")
    try:
        yield fs
    finally:
        fs.release()


def _write_names(fs: cv2.FileStorage, names: list[str]) -> None:
    fs.startWriteStruct("names", cv2.FileNode_SEQ)
    for name in names:
        fs.write("", name)
    fs.endWriteStruct()
