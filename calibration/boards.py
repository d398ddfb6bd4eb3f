"""Calibration boards: description, TOML files, detection in images, printable pages.

A board is a checkerboard or a ChArUco board, described by its squares::

    kind = "charuco"            # or "checkerboard"
    columns = 4                 # squares across
    rows = 5                    # squares down
    square_size = 0.054         # metres, as printed (measure it)
    marker_size = 0.0405        # metres, ChArUco only
    dictionary = "DICT_4X4_1000"
    legacy = false              # OpenCV < 4.6 ChArUco layout (matters for an even row count)
    inverted = false            # printed white-on-black
    paper = "letter"            # optional: "a4", "a3", "letter", "legal" or [width, height] in metres

caliscope's ``charuco.toml`` (columns, rows, board_width, board_height, units,
aruco_scale, square_size_override_cm, inverted, legacy_pattern) is read as well.

Board coordinates: origin at the top-left outer corner of the printed grid, x along
the columns, y along the rows, z into the board (OpenCV's ChArUco convention, used
for checkerboards too), metres.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import tomli_w

from calibration.errors import TriangulumError, read_toml

KINDS = ("charuco", "checkerboard")
PAPERS = {  # width, height in metres (portrait)
    "a4": (0.210, 0.297),
    "a3": (0.297, 0.420),
    "letter": (0.2159, 0.2794),
    "legal": (0.2159, 0.3556),
}
INCH = 0.0254
# A checkerboard detection whose corners stray further than this fraction of a square
# from the best homography is a mis-detection (e.g. a grid found across two boards).
_MAX_HOMOGRAPHY_RESIDUAL = 0.25
# Checkerboards are searched at this many pixels on the long side, then refined at
# full resolution: the search costs seconds on large images and gains nothing there.
_SEARCH_SIDE = 1000


@dataclass
class Board:
    """A printed calibration target.

    columns, rows: squares across and down; square_size, marker_size: metres;
    dictionary: OpenCV ArUco dictionary name (ChArUco only).
    """

    kind: str
    columns: int
    rows: int
    square_size: float
    marker_size: float = 0.0
    dictionary: str = "DICT_4X4_50"
    legacy: bool = False
    inverted: bool = False
    paper: tuple[float, float] | None = None
    name: str = "board"

    def __post_init__(self) -> None:
        where = f"board '{self.name}'"
        if self.kind not in KINDS:
            raise TriangulumError(f"{where}: kind '{self.kind}' is unknown; use one of {KINDS}.")
        self.columns, self.rows = int(self.columns), int(self.rows)
        if self.columns < 3 or self.rows < 3:
            raise TriangulumError(f"{where}: {self.columns}x{self.rows} squares is too small; a board needs at least 3x3 squares.")
        if not self.square_size > 0:
            raise TriangulumError(f"{where}: square_size must be a positive length in metres, not {self.square_size}.")
        if self.square_size > 1.0:
            raise TriangulumError(f"{where}: square_size {self.square_size} looks like millimetres; give it in metres (e.g. 0.06).")
        if self.kind == "charuco":
            if not 0 < self.marker_size < self.square_size:
                raise TriangulumError(f"{where}: marker_size must be between 0 and square_size ({self.square_size} m), not {self.marker_size}.")
            aruco_dictionary(self.dictionary)  # fail early on a bad name
            needed = (self.columns * self.rows) // 2
            have = len(aruco_dictionary(self.dictionary).bytesList)
            if needed > have:
                raise TriangulumError(f"{where}: {self.columns}x{self.rows} squares need {needed} markers but {self.dictionary} has only {have}; choose a larger dictionary.")

    # --- geometry -------------------------------------------------------------
    @property
    def inner_corners(self) -> tuple[int, int]:
        """Inner corners across and down (OpenCV's checkerboard pattern size)."""
        return self.columns - 1, self.rows - 1

    @property
    def n_corners(self) -> int:
        return (self.columns - 1) * (self.rows - 1)

    @property
    def size_m(self) -> tuple[float, float]:
        """Printed grid width, height in metres."""
        return self.columns * self.square_size, self.rows * self.square_size

    @property
    def object_points(self) -> np.ndarray:
        """Inner corners in board coordinates, row-major by id. -> (N, 3) metres"""
        cols, rows = self.inner_corners
        ij = np.stack(np.meshgrid(np.arange(cols), np.arange(rows)), -1).reshape(-1, 2)
        xy = (ij + 1.0) * self.square_size
        return np.concatenate([xy, np.zeros((len(xy), 1))], 1)

    def describe(self) -> str:
        text = f"{self.kind} {self.columns}x{self.rows} squares of {self.square_size * 1000:.1f} mm"
        if self.kind == "charuco":
            text += f", markers {self.marker_size * 1000:.1f} mm, {self.dictionary}"
            text += ", legacy layout" if self.legacy else ""
        return text + (", printed inverted" if self.inverted else "")

    def opencv_board(self) -> cv2.aruco.CharucoBoard:
        """The OpenCV ChArUco board object (ChArUco boards only)."""
        if self.kind != "charuco":
            raise TriangulumError(f"board '{self.name}' is a checkerboard; it has no ArUco markers.")
        board = cv2.aruco.CharucoBoard(
            (self.columns, self.rows), self.square_size, self.marker_size, aruco_dictionary(self.dictionary)
        )
        board.setLegacyPattern(self.legacy)
        return board


def aruco_dictionary(name: str) -> cv2.aruco.Dictionary:
    """An OpenCV predefined ArUco dictionary by name, e.g. "DICT_4X4_1000"."""
    key = str(name).upper()
    names = sorted(n for n in dir(cv2.aruco) if n.startswith("DICT_"))
    match = [n for n in names if n.upper() == key]
    if not match:
        raise TriangulumError(f"ArUco dictionary '{name}' is unknown; use one of {', '.join(names)}.")
    return cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, match[0]))


# --- files ------------------------------------------------------------------------
def _paper(value: object, where: str) -> tuple[float, float] | None:
    if value is None:
        return None
    if isinstance(value, str):
        if value.lower() not in PAPERS:
            raise TriangulumError(f"{where}: paper '{value}' is unknown; use one of {sorted(PAPERS)} or [width, height] in metres.")
        return PAPERS[value.lower()]
    try:
        w, h = (float(v) for v in value)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise TriangulumError(f"{where}: paper must be a name or [width, height] in metres, not {value!r}.") from None
    return w, h


def board_from_dict(data: dict, source: str = "board") -> Board:
    """A Board from a parsed TOML document: ours or caliscope's charuco.toml."""
    if "aruco_scale" in data or "square_size_override_cm" in data or "board_width" in data:
        return _board_from_caliscope(data, source)
    known = {"kind", "columns", "rows", "square_size", "marker_size", "dictionary", "legacy", "inverted", "paper", "name", "inner_corners"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise TriangulumError(f"{source}: unknown field(s) {unknown}; a board file has {sorted(known)}.")
    data = dict(data)
    if "inner_corners" in data:  # checkerboards are often described by inner corners
        cols, rows = data.pop("inner_corners")
        data.setdefault("columns", int(cols) + 1)
        data.setdefault("rows", int(rows) + 1)
    for key in ("kind", "columns", "rows", "square_size"):
        if key not in data:
            raise TriangulumError(f"{source}: field '{key}' is missing.")
    data["paper"] = _paper(data.get("paper"), source)
    data.setdefault("name", Path(source).stem)
    try:
        return Board(**data)
    except TypeError as exc:
        raise TriangulumError(f"{source}: {exc}.") from None


def _board_from_caliscope(data: dict, source: str) -> Board:
    units = str(data.get("units", "inch"))
    to_m = {"inch": INCH, "cm": 0.01, "mm": 0.001}.get(units)
    if to_m is None:
        raise TriangulumError(f"{source}: units '{units}' is unknown; caliscope uses 'inch' or 'cm'.")
    cols, rows = int(data["columns"]), int(data["rows"])
    width = float(data.get("board_width", 0.0)) * to_m
    height = float(data.get("board_height", 0.0)) * to_m
    override = data.get("square_size_override_cm")
    # caliscope: a measured square size wins; else the largest square that fits the sheet
    square = float(override) / 100 if override else min(height / rows, width / cols)
    paper = (width, height) if width > 0 and height > 0 else None
    return Board(
        kind="charuco",
        columns=cols,
        rows=rows,
        square_size=square,
        marker_size=square * float(data.get("aruco_scale", 0.75)),
        dictionary=str(data.get("dictionary", "DICT_4X4_50")),
        legacy=bool(data.get("legacy_pattern", False)),
        inverted=bool(data.get("inverted", False)),
        paper=paper,
        name=Path(source).stem,
    )


def load_board(path: str | Path) -> Board:
    """Read a board TOML (ours or caliscope's charuco.toml)."""
    data = read_toml(path, "board file", "is it a board description (see 'triangulum calib board --help')?")
    return board_from_dict(data, str(path))


def save_board(board: Board, path: str | Path) -> Path:
    """Write the board in our TOML format."""
    data = {
        "kind": board.kind,
        "columns": board.columns,
        "rows": board.rows,
        "square_size": board.square_size,
    }
    if board.kind == "charuco":
        data |= {"marker_size": board.marker_size, "dictionary": board.dictionary, "legacy": board.legacy}
    data["inverted"] = board.inverted
    if board.paper is not None:
        data["paper"] = list(board.paper)
    path = Path(path)
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    return path


# --- detection --------------------------------------------------------------------
@dataclass
class Detection:
    """Board corners found in one image.

    ids: (N,) corner ids indexing `Board.object_points`; corners: (N, 2) px.
    """

    ids: np.ndarray
    corners: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    def object_points(self, board: Board) -> np.ndarray:
        """The detected corners in board coordinates. -> (N, 3) metres"""
        return board.object_points[self.ids]


def _gray(image: np.ndarray) -> np.ndarray:
    if image.ndim == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    return image


class BoardDetector:
    """Finds a board in images; holds the OpenCV detector so a video reuses it."""

    def __init__(self, board: Board, min_corners: int | None = None) -> None:
        self.board = board
        # Fewer than 4 corners cannot give a pose; a checkerboard is all-or-nothing.
        self.min_corners = min_corners if min_corners is not None else (6 if board.kind == "charuco" else board.n_corners)
        if board.kind == "charuco":
            params = cv2.aruco.DetectorParameters()
            params.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_SUBPIX
            self._cv_board = board.opencv_board()
            self._charuco = cv2.aruco.CharucoDetector(self._cv_board, cv2.aruco.CharucoParameters(), params)

    def detect(self, image: np.ndarray) -> Detection | None:
        """Corners of the board in one image (BGR or gray) or None if not found."""
        gray = _gray(image)
        if self.board.inverted:
            # White-on-black print: inverting the image restores the normal board.
            gray = 255 - gray
        found = self._detect_charuco(gray) if self.board.kind == "charuco" else self._detect_checkerboard(gray)
        if found is None or len(found) < self.min_corners:
            return None
        return found

    def _detect_charuco(self, gray: np.ndarray) -> Detection | None:
        corners, ids, _, _ = self._charuco.detectBoard(gray)
        if ids is None or len(ids) < 4:
            return None
        ids = ids.ravel().astype(np.int64)
        if self._cv_board.checkCharucoCornersCollinear(ids.reshape(-1, 1).astype(np.int32)):
            return None
        order = np.argsort(ids)
        return Detection(ids[order], corners.reshape(-1, 2).astype(np.float64)[order])

    def _detect_checkerboard(self, gray: np.ndarray) -> Detection | None:
        pattern = self.board.inner_corners
        scale = min(1.0, _SEARCH_SIDE / max(gray.shape))
        small = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else gray
        flags = cv2.CALIB_CB_NORMALIZE_IMAGE | cv2.CALIB_CB_EXHAUSTIVE
        ok, corners = cv2.findChessboardCornersSB(small, pattern, flags=flags)
        if not ok:
            ok, corners = cv2.findChessboardCorners(
                small, pattern, flags=cv2.CALIB_CB_ADAPTIVE_THRESH | cv2.CALIB_CB_NORMALIZE_IMAGE
            )
        if not ok:
            return None
        corners = corners.reshape(-1, 2).astype(np.float64)
        # Pixel centres: x_full + 0.5 = (x_small + 0.5) / scale
        corners = (corners + 0.5) / scale - 0.5
        spacing = _median_spacing(corners, pattern)
        win = int(np.clip(spacing * 0.2, 3, 15))
        refined = cv2.cornerSubPix(
            gray, corners.astype(np.float32).reshape(-1, 1, 2), (win, win), (-1, -1),
            (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 50, 0.01),
        ).reshape(-1, 2).astype(np.float64)
        if not _consistent_grid(refined, self.board, spacing):
            return None
        return Detection(np.arange(len(refined)), refined)


def _median_spacing(corners: np.ndarray, pattern: tuple[int, int]) -> float:
    """Median distance between neighbouring grid corners, px. corners: (N, 2) row-major."""
    grid = corners.reshape(pattern[1], pattern[0], 2)
    steps = np.concatenate([
        np.linalg.norm(np.diff(grid, axis=1), axis=-1).ravel(),
        np.linalg.norm(np.diff(grid, axis=0), axis=-1).ravel(),
    ])
    return float(np.median(steps))


def _consistent_grid(corners: np.ndarray, board: Board, spacing: float) -> bool:
    """True if the corners fit one plane-to-image homography within a fraction of a square."""
    obj = board.object_points[:, :2]
    H, _ = cv2.findHomography(obj, corners, 0)
    if H is None:
        return False
    pred = cv2.perspectiveTransform(obj.reshape(1, -1, 2), H).reshape(-1, 2)
    return float(np.abs(pred - corners).max()) < _MAX_HOMOGRAPHY_RESIDUAL * spacing
