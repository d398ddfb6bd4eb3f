"""Print-ready pages of calibration boards: the board rendered at true scale on a paper
size, written as PNG or as a one-page PDF whose physical size is exact.

    save_board_page(load_board("board.toml"), "board.pdf", dpi=300, paper=PAPERS["a4"])
"""

from __future__ import annotations

import zlib
from pathlib import Path

import cv2
import numpy as np

from calibration.boards import INCH, PAPERS, Board  # noqa: F401 (PAPERS: the sizes pages know)
from calibration.errors import TriangulumError


def render_board(board: Board, dpi: float = 300.0) -> tuple[np.ndarray, float]:
    """The board's grid as a gray image at about `dpi`.

    -> (image (H, W) uint8, exact dots per inch). Squares are a whole number of
    pixels, so the returned dpi (not the requested one) gives the true scale.
    """
    px = max(20, int(round(board.square_size / INCH * dpi)))
    w, h = board.columns * px, board.rows * px
    if board.kind == "charuco":
        image = board.opencv_board().generateImage((w, h), marginSize=0, borderBits=1)
    else:
        jj, ii = np.meshgrid(np.arange(w) // px, np.arange(h) // px)
        image = np.where((ii + jj) % 2 == 0, 0, 255).astype(np.uint8)
    if board.inverted:
        image = 255 - image
    return image, px / (board.square_size / INCH)


def _fits(page: tuple[float, float], need: tuple[float, float]) -> tuple[float, float] | None:
    """The page, turned to landscape if that is what fits, or None."""
    if page[0] >= need[0] - 1e-9 and page[1] >= need[1] - 1e-9:
        return page
    if page[1] >= need[0] - 1e-9 and page[0] >= need[1] - 1e-9:
        return page[1], page[0]
    return None


def board_page(board: Board, dpi: float = 300.0, paper: tuple[float, float] | None = None) -> tuple[np.ndarray, float, tuple[float, float]]:
    """A printable page: the board centred, a caption and a 100 mm check bar.

    -> (image (H, W) uint8, dpi, page size (width, height) metres). `paper` must hold
    the board (margins and caption shrink or go if needed); without it the board's
    own paper is used if the board fits with margins, else the smallest standard
    sheet that does, else a custom page.
    """
    grid, dpi = render_board(board, dpi)
    bw, bh = board.size_m
    margin, caption_h = 0.012, 0.03
    need = (bw + 2 * margin, bh + 2 * margin + caption_h)
    if paper is not None:
        page = _fits(paper, (bw, bh))
        if page is None:
            raise TriangulumError(
                f"board '{board.name}' ({bw * 100:.1f} x {bh * 100:.1f} cm) does not fit on a "
                f"{paper[0] * 100:.1f} x {paper[1] * 100:.1f} cm page; use larger paper or smaller squares."
            )
    else:
        options = ([board.paper] if board.paper else []) + sorted(PAPERS.values(), key=lambda p: p[0] * p[1])
        page = next((f for f in (_fits(p, need) for p in options) if f is not None), need)
    room = page[1] - bh
    with_caption = room >= 2 * 0.005 + caption_h
    margin = min(margin, (page[0] - bw) / 2, (room - (caption_h if with_caption else 0)) / 2)
    to_px = dpi / INCH
    W, H = int(round(page[0] * to_px)), int(round(page[1] * to_px))
    image = np.full((H, W), 255, np.uint8)
    x0 = (W - grid.shape[1]) // 2
    y0 = max(0, int(round(margin * to_px)))
    gh, gw = min(grid.shape[0], H - y0), min(grid.shape[1], W - max(x0, 0))
    image[y0 : y0 + gh, max(x0, 0) : max(x0, 0) + gw] = grid[:gh, :gw]
    if with_caption:
        # Caption and a 100 mm bar to check the printer did not rescale.
        y = y0 + grid.shape[0] + int(0.010 * to_px)
        bar = int(round(0.100 * to_px))
        thick = max(2, int(0.001 * to_px))
        cv2.rectangle(image, (x0, y), (x0 + bar, y + thick), 0, -1)
        for x in (x0, x0 + bar):
            cv2.line(image, (x, y - 3 * thick), (x, y + 4 * thick), 0, thick)
        font_scale = 0.0009 * to_px / 10
        text = f"{board.describe()}  |  bar = 100 mm: measure it"
        cv2.putText(image, text, (x0, y + int(0.012 * to_px)), cv2.FONT_HERSHEY_SIMPLEX, font_scale, 0, max(1, thick // 2), cv2.LINE_AA)
    return image, dpi, page


def write_pdf(image: np.ndarray, path: str | Path, page: tuple[float, float]) -> Path:
    """A one-page PDF showing a gray image over the whole page at true size.

    image: (H, W) uint8; page: (width, height) metres -> the path written.
    """
    pts = [p / INCH * 72.0 for p in page]
    h, w = image.shape
    data = zlib.compress(np.ascontiguousarray(image, np.uint8).tobytes(), 9)
    content = f"q {pts[0]:.4f} 0 0 {pts[1]:.4f} 0 0 cm /Im0 Do Q".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {pts[0]:.4f} {pts[1]:.4f}] "
        f"/Resources << /XObject << /Im0 5 0 R >> >> /Contents 4 0 R >>".encode(),
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        f"<< /Type /XObject /Subtype /Image /Width {w} /Height {h} /ColorSpace /DeviceGray "
        f"/BitsPerComponent 8 /Filter /FlateDecode /Length {len(data)} >>\nstream\n".encode() + data + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    path = Path(path)
    path.write_bytes(bytes(out))
    return path


def save_board_page(board: Board, path: str | Path, dpi: float = 300.0, paper: tuple[float, float] | None = None) -> Path:
    """Write the printable page as PDF (true scale) or as an image (.png, .tif...)."""
    image, dpi, page = board_page(board, dpi, paper)
    path = Path(path)
    if path.suffix.lower() == ".pdf":
        return write_pdf(image, path, page)
    if not cv2.imwrite(str(path), image):
        raise TriangulumError(f"cannot write {path}; use a .pdf or an image extension such as .png.")
    return path
