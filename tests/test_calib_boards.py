"""Boards: TOML files (ours and caliscope's), detection (real and rendered), printable PDF."""

from __future__ import annotations

import re
import zlib

import cv2
import numpy as np
import pytest
from calib_support import (
    CALISCOPE,
    CALISCOPE_BOARD,
    INTRINSIC_PHOTOS,
    POSE2SIM_BOARD,
    needs_caliscope,
    needs_pose2sim,
)

from calibration.board_print import board_page, render_board, save_board_page
from calibration.boards import Board, BoardDetector, board_from_dict, load_board, save_board
from calibration.errors import TriangulumError


def test_board_toml_round_trip(tmp_path):
    board = Board("charuco", 5, 7, 0.035, 0.026, "DICT_5X5_100", legacy=True, inverted=True, paper=(0.21, 0.297))
    path = save_board(board, tmp_path / "b.toml")
    again = load_board(path)
    assert (again.kind, again.columns, again.rows, again.dictionary, again.legacy, again.inverted) == (
        "charuco", 5, 7, "DICT_5X5_100", True, True)
    assert again.square_size == pytest.approx(0.035) and again.marker_size == pytest.approx(0.026)
    assert again.paper == pytest.approx((0.21, 0.297))


def test_checkerboard_by_inner_corners():
    board = board_from_dict({"kind": "checkerboard", "inner_corners": [4, 7], "square_size": 0.06})
    assert (board.columns, board.rows, board.n_corners) == (5, 8, 28)
    pts = board.object_points
    assert pts.shape == (28, 3)
    # Origin at the outer corner: the first inner corner is one square in.
    assert pts[0] == pytest.approx([0.06, 0.06, 0.0]) and pts[1] == pytest.approx([0.12, 0.06, 0.0])


@needs_caliscope
def test_caliscope_charuco_toml():
    board = load_board(CALISCOPE_BOARD)
    assert board.kind == "charuco" and (board.columns, board.rows) == (4, 5)
    assert board.square_size == pytest.approx(0.054) and board.marker_size == pytest.approx(0.0405)
    assert board.dictionary == "DICT_4X4_1000" and board.inverted
    assert board.paper == pytest.approx((8.5 * 0.0254, 11 * 0.0254))
    # Same corners as OpenCV's own board object.
    assert np.allclose(board.object_points, board.opencv_board().getChessboardCorners())


@pytest.mark.parametrize("data, words", [
    ({"kind": "charuco", "columns": 5, "rows": 7, "square_size": 0.04, "marker_size": 0.03, "dictionary": "DICT_9X9"}, "dictionary"),
    ({"kind": "charuco", "columns": 5, "rows": 7, "square_size": 0.04, "marker_size": 0.05}, "marker_size"),
    ({"kind": "checkerboard", "columns": 5, "rows": 7, "square_size": 40}, "millimetres"),
    ({"kind": "charuco", "columns": 30, "rows": 30, "square_size": 0.01, "marker_size": 0.007, "dictionary": "DICT_4X4_50"}, "larger dictionary"),
    ({"kind": "circles", "columns": 5, "rows": 7, "square_size": 0.04}, "kind"),
    ({"kind": "checkerboard", "columns": 5, "square_size": 0.04}, "rows"),
    ({"kind": "checkerboard", "columns": 5, "rows": 7, "square_size": 0.04, "colour": "red"}, "unknown field"),
])
def test_bad_board_files_say_what_is_wrong(data, words):
    with pytest.raises(TriangulumError, match=words):
        board_from_dict(data, "b.toml")


def _warp_board(board: Board, seed: int = 0):
    """The rendered board seen in perspective: (image, true corner positions (N, 2))."""
    grid, dpi = render_board(board, 100)
    h, w = grid.shape
    pad = 200
    canvas = np.full((h + 2 * pad, w + 2 * pad), 255 if not board.inverted else 0, np.uint8)
    canvas[pad : pad + h, pad : pad + w] = grid
    rng = np.random.default_rng(seed)
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]]) + pad
    dst = src + rng.uniform(-60, 60, src.shape).astype(np.float32)
    H = cv2.getPerspectiveTransform(src, dst)
    image = cv2.warpPerspective(canvas, H, (canvas.shape[1], canvas.shape[0]), flags=cv2.INTER_LINEAR, borderValue=128)
    px_per_m = dpi / 0.0254
    # Pixel (x, y) of the rendered grid covers [x, x+1): corner at board point p sits at p * px/m - 0.5.
    corners = board.object_points[:, :2] * px_per_m - 0.5 + pad
    true = cv2.perspectiveTransform(corners.reshape(1, -1, 2), H).reshape(-1, 2)
    return image, true


@pytest.mark.parametrize("kind, inverted", [("charuco", False), ("charuco", True), ("checkerboard", False)])
def test_detection_of_a_rendered_board_is_subpixel(kind, inverted):
    board = Board(kind, 6, 5, 0.03, 0.022 if kind == "charuco" else 0.0, "DICT_4X4_50", inverted=inverted)
    image, true = _warp_board(board)
    det = BoardDetector(board).detect(image)
    assert det is not None and len(det) == board.n_corners
    err = np.linalg.norm(det.corners - true[det.ids], axis=1)
    if kind == "checkerboard":  # a checkerboard's corner order may start at either end
        err = min(err, np.linalg.norm(det.corners - true[::-1][det.ids], axis=1), key=np.median)
    assert np.median(err) < 0.15 and err.max() < 0.5


@needs_caliscope
def test_inverted_real_board_needs_inversion():
    board = load_board(CALISCOPE_BOARD)
    cap = cv2.VideoCapture(str(CALISCOPE / "extrinsic" / "cam_0.mp4"))
    found = plain = 0
    normal = Board(**{**board.__dict__, "inverted": False})
    for _ in range(8):
        ok, image = cap.read()
        assert ok
        det = BoardDetector(board).detect(image)
        found += det is not None and len(det) >= 6
        plain += BoardDetector(normal).detect(image) is not None
    cap.release()
    assert found >= 6 and plain == 0


@needs_pose2sim
def test_checkerboard_photo_detection_and_misdetection_guard():
    board = board_from_dict(POSE2SIM_BOARD)
    image = cv2.imread(str(INTRINSIC_PHOTOS / "int_cam01_img" / "cam01_01_int.jpg"))
    det = BoardDetector(board).detect(image)
    assert det is not None and len(det) == 28
    # The corners form a grid: neighbours along rows are a similar distance apart.
    grid = det.corners.reshape(7, 4, 2)
    steps = np.linalg.norm(np.diff(grid, axis=1), axis=-1)
    assert steps.std() / steps.mean() < 0.2
    # A wrong pattern size finds nothing rather than garbage.
    wrong = Board("checkerboard", 6, 8, 0.06)
    assert BoardDetector(wrong).detect(image) is None


def _pdf_objects(data: bytes) -> dict[int, bytes]:
    """Parse our PDF through its xref table (so a bad offset fails)."""
    start = int(re.search(rb"startxref\n(\d+)", data).group(1))
    assert data[start:].startswith(b"xref")
    lines = data[start:].split(b"\n")
    count = int(lines[1].split()[1])
    objects = {}
    for i in range(1, count):
        offset = int(lines[2 + i].split()[0])
        m = re.match(rb"(\d+) 0 obj\n", data[offset:])
        assert m and int(m.group(1)) == i
        end = data.index(b"\nendobj", offset)
        objects[i] = data[offset + m.end() : end]
    return objects


def test_pdf_is_true_scale(tmp_path):
    board = Board("charuco", 5, 7, 0.035, 0.026, "DICT_4X4_50")
    path = save_board_page(board, tmp_path / "board.pdf", dpi=200)
    data = path.read_bytes()
    assert data.startswith(b"%PDF-1.4") and data.rstrip().endswith(b"%%EOF")
    objs = _pdf_objects(data)
    media = [float(v) for v in re.search(rb"/MediaBox \[([^\]]+)\]", objs[3]).group(1).split()]
    page_img, dpi, page = board_page(board, 200)
    assert media[2:] == pytest.approx([page[0] / 0.0254 * 72, page[1] / 0.0254 * 72], abs=1e-3)
    w = int(re.search(rb"/Width (\d+)", objs[5]).group(1))
    h = int(re.search(rb"/Height (\d+)", objs[5]).group(1))
    stream = objs[5][objs[5].index(b"stream\n") + 7 : objs[5].rindex(b"\nendstream")]
    image = np.frombuffer(zlib.decompress(stream), np.uint8).reshape(h, w)
    assert np.array_equal(image, page_img)
    # The image spans the page, so one square measures square_size on paper.
    grid, _ = render_board(board, 200)
    square_px = grid.shape[1] / board.columns
    square_pt = square_px * media[2] / w
    assert square_pt / 72 * 0.0254 == pytest.approx(board.square_size, rel=1e-3)


def test_board_too_big_for_paper():
    board = Board("checkerboard", 10, 14, 0.06)
    with pytest.raises(TriangulumError, match="does not fit"):
        board_page(board, 50, paper=(0.21, 0.297))
    _, _, page = board_page(board, 50)  # custom page when no standard sheet holds it
    assert page[0] >= 0.6 and page[1] >= 0.84


def test_png_page(tmp_path):
    path = save_board_page(Board("checkerboard", 5, 8, 0.03), tmp_path / "b.png", dpi=72)
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    assert image is not None and image.min() == 0 and image.max() == 255
