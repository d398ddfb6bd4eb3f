"""Intrinsic calibration of one camera from views of a board.

    views = detect_views(source, board)            # every frame, sub-pixel corners
    result = calibrate_intrinsics(views, board)     # diverse views, outliers out, RMS, uncertainty
    result.camera                                    # a Camera (pose = identity)

The standard model is OpenCV's pinhole + [k1 k2 p1 p2 k3]. The fisheye model is fitted
with cv2.fisheye and then re-expressed in the standard model over the image (the
rig format has one distortion model); the re-expression error is reported.

Uncertainty: OpenCV's formal standard deviations assume the residuals are the only
error, which with few views badly understates how loosely the principal point is
pinned; a delete-a-group jackknife over the views is reported beside them and the
larger of the two drives the warnings.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from calibration.boards import Board, BoardDetector, Detection
from calibration.camera import Camera
from calibration.errors import TriangulumError
from calibration.frames import FrameSource, Progress, frame_count, iter_frames

PARAMS = ("fx", "fy", "cx", "cy", "k1", "k2", "p1", "p2", "k3")
MODELS = ("standard", "fisheye")


@dataclass
class ViewDetections:
    """Board detections of one camera. detections: {frame index: Detection}; size: (W, H) px."""

    camera: str
    size: tuple[int, int]
    detections: dict[int, Detection]
    frames_read: int


def detect_views(
    source: FrameSource,
    board: Board,
    step: int = 1,
    progress: Progress | None = None,
    indices: set[int] | None = None,
) -> ViewDetections:
    """Detect the board in every `step`-th frame (or the given frame indices)."""
    detector = BoardDetector(board)
    total = len(indices) if indices is not None else max(1, frame_count(source) // max(1, step))
    found: dict[int, Detection] = {}
    size: tuple[int, int] | None = None
    n = 0
    for n, (index, image) in enumerate(iter_frames(source, step, indices), start=1):
        size = (image.shape[1], image.shape[0])
        det = detector.detect(image)
        if det is not None:
            found[index] = det
        if progress is not None:
            progress(f"detecting {board.kind} in {source.name}", n, total)
    if size is None:
        raise TriangulumError(f"camera '{source.name}': {source.path} yields no frames.")
    return ViewDetections(source.name, size, found, n)


def no_board_error(camera: str, board: Board, frames: int) -> TriangulumError:
    """The error for a camera that never saw the board, with what to check."""
    hint = "whether the board is printed inverted (inverted = true in the board file, or --inverted)"
    if board.kind == "checkerboard":
        hint = f"that columns/rows count squares ({board.columns}x{board.rows}, i.e. {board.inner_corners[0]}x{board.inner_corners[1]} inner corners) and that the whole board is in view"
    return TriangulumError(
        f"no board detected in any of {frames} frames of {camera}: check the board file's "
        f"{'dictionary (' + board.dictionary + ') and ' if board.kind == 'charuco' else ''}{hint}."
    )


# --- view selection and coverage ---------------------------------------------------
def view_features(det: Detection, board: Board, size: tuple[int, int]) -> np.ndarray:
    """Where and how a view shows the board: (5,) centre x, y, scale, tilt x, y (all ~0..1)."""
    W, H = size
    c = det.corners
    centre = c.mean(0) / np.array([W, H])
    hull = cv2.convexHull(c.astype(np.float32))
    scale = np.sqrt(max(cv2.contourArea(hull), 1.0) / (W * H))
    # Tilt: board normal from the plane-to-image homography with a rough camera.
    f = float(max(W, H))
    Kinv = np.linalg.inv(np.array([[f, 0, W / 2], [0, f, H / 2], [0, 0, 1]]))
    Hm, _ = cv2.findHomography(det.object_points(board)[:, :2], c, 0)
    if Hm is None:
        return np.array([*centre, scale, 0.0, 0.0])
    M = Kinv @ Hm
    n = np.cross(M[:, 0], M[:, 1])
    n = n / (np.linalg.norm(n) + 1e-12) * np.sign(n[2] if abs(n[2]) > 1e-12 else 1.0)
    return np.array([*centre, scale, n[0], n[1]])


def select_views(views: ViewDetections, board: Board, max_views: int) -> list[int]:
    """Frame indices of up to `max_views` mutually different views (farthest-point sampling).

    Seeded with the view showing most corners; each next view is the one farthest (in
    position, scale and tilt of the board) from all chosen so far, so a video of a
    board waved in one spot for minutes does not drown the rare views at the edges.
    """
    frames = sorted(views.detections)
    if len(frames) <= max_views:
        return frames
    feats = np.stack([view_features(views.detections[f], board, views.size) for f in frames])
    feats = feats * np.array([1.0, 1.0, 1.5, 1.0, 1.0])  # scale varies less than position
    counts = np.array([len(views.detections[f]) for f in frames])
    chosen = [int(np.argmax(counts))]
    dist = np.linalg.norm(feats - feats[chosen[0]], axis=1)
    while len(chosen) < max_views:
        # Prefer fuller views among nearly equally novel ones.
        score = dist * (0.5 + 0.5 * counts / counts.max())
        nxt = int(np.argmax(score))
        if dist[nxt] <= 0:
            break
        chosen.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(feats - feats[nxt], axis=1))
    return sorted(frames[i] for i in chosen)


def coverage_map(detections: list[Detection], size: tuple[int, int], cell: int = 16) -> np.ndarray:
    """How many views covered each cell of the image with the board's outline.

    -> (ceil(H / cell), ceil(W / cell)) int counts.
    """
    W, H = size
    gw, gh = -(-W // cell), -(-H // cell)
    acc = np.zeros((gh, gw), np.int32)
    for det in detections:
        hull = cv2.convexHull((det.corners / cell).astype(np.float32)).astype(np.int32)
        mask = np.zeros((gh, gw), np.uint8)
        cv2.fillConvexPoly(mask, hull, 1)
        acc += mask
    return acc


def draw_coverage(image: np.ndarray, coverage: np.ndarray, detections: list[Detection] | None = None) -> np.ndarray:
    """The image with covered areas tinted green and empty areas red (a GUI/preview overlay)."""
    H, W = image.shape[:2]
    base = image if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    cov = cv2.resize(coverage.astype(np.float32), (W, H), interpolation=cv2.INTER_NEAREST)
    tint = np.zeros_like(base)
    tint[..., 2] = np.where(cov == 0, 255, 0)
    tint[..., 1] = np.where(cov > 0, np.clip(80 + 40 * cov, 0, 255), 0).astype(np.uint8)
    out = cv2.addWeighted(base, 0.65, tint, 0.35, 0)
    for det in detections or []:
        for x, y in det.corners:
            cv2.circle(out, (int(round(x)), int(round(y))), 3, (255, 255, 0), -1)
    return out


# --- calibration --------------------------------------------------------------------
@dataclass
class IntrinsicsOptions:
    """model: "standard" | "fisheye"; max_views: views kept after selection;
    reject_factor / reject_min_px: a view whose RMS exceeds both factor x median and
    min_px is dropped and the camera recalibrated."""

    model: str = "standard"
    max_views: int = 40
    fix_k3: bool = False
    zero_tangent: bool = False
    fix_principal_point: bool = False
    reject_factor: float = 3.0
    reject_min_px: float = 1.0
    max_rounds: int = 3
    jackknife_groups: int = 10


@dataclass
class IntrinsicsResult:
    """camera: the calibrated Camera (identity pose); rms: px over the used views;
    std / spread: 1-sigma of each PARAMS entry (formal / jackknife); coverage: see
    coverage_map; fisheye_fit_px: max error of re-expressing a fisheye fit."""

    camera: Camera
    rms: float
    used: list[int]
    rejected: list[int]
    view_errors: dict[int, float]
    std: dict[str, float]
    spread: dict[str, float]
    coverage: np.ndarray
    coverage_fraction: float
    detected: int
    warnings: list[str] = field(default_factory=list)
    model: str = "standard"
    fisheye_fit_px: float | None = None

    def uncertainty(self, name: str) -> float:
        """The larger of the formal and jackknife 1-sigma of a parameter."""
        return float(np.nanmax([self.std.get(name, np.nan), self.spread.get(name, np.nan), 0.0]))

    def summary(self) -> str:
        K = self.camera.K
        lines = [
            f"{self.camera.name}: RMS {self.rms:.3f} px over {len(self.used)} views "
            f"({len(self.rejected)} rejected, {self.detected} with the board), coverage {self.coverage_fraction:.0%}",
            f"  fx {K[0, 0]:.1f} ± {self.uncertainty('fx'):.1f}  fy {K[1, 1]:.1f} ± {self.uncertainty('fy'):.1f}  "
            f"cx {K[0, 2]:.1f} ± {self.uncertainty('cx'):.1f}  cy {K[1, 2]:.1f} ± {self.uncertainty('cy'):.1f} px",
            "  " + "  ".join(f"{n} {v:+.4f} ± {self.uncertainty(n):.4f}" for n, v in zip(PARAMS[4:], self.camera.dist, strict=True)),
        ]
        lines += [f"  warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def _flags(options: IntrinsicsOptions) -> int:
    flags = 0
    if options.fix_k3:
        flags |= cv2.CALIB_FIX_K3
    if options.zero_tangent:
        flags |= cv2.CALIB_ZERO_TANGENT_DIST
    if options.fix_principal_point:
        flags |= cv2.CALIB_FIX_PRINCIPAL_POINT
    return flags


def _solve(obj: list[np.ndarray], img: list[np.ndarray], size: tuple[int, int], options: IntrinsicsOptions):
    """One OpenCV calibration. -> (K, dist (5,), per-view RMS (V,), formal std (9,))"""
    if options.model == "fisheye":
        K = np.eye(3)
        D = np.zeros((4, 1))
        flags = cv2.CALIB_RECOMPUTE_EXTRINSIC | cv2.CALIB_FIX_SKEW
        crit = (cv2.TERM_CRITERIA_COUNT + cv2.TERM_CRITERIA_EPS, 100, 1e-9)
        # OpenCV 5's fisheye calibration accepts views shaped (1, N, 3) / (1, N, 2) only.
        o = [p.reshape(1, -1, 3).astype(np.float64) for p in obj]
        i = [p.reshape(1, -1, 2).astype(np.float64) for p in img]
        _, K, D, rvecs, tvecs = cv2.fisheye.calibrate(o, i, size, K, D, flags=flags, criteria=crit)
        errs = []
        for oo, ii, r, t in zip(o, i, rvecs, tvecs, strict=True):
            proj, _ = cv2.fisheye.projectPoints(oo, r, t, K, D)
            errs.append(np.sqrt(np.mean(np.sum((proj.reshape(-1, 2) - ii.reshape(-1, 2)) ** 2, -1))))
        return K, D.ravel(), np.array(errs), np.full(len(PARAMS), np.nan)
    o = [p.astype(np.float32) for p in obj]
    i = [p.astype(np.float32) for p in img]
    crit = (cv2.TERM_CRITERIA_COUNT + cv2.TERM_CRITERIA_EPS, 100, 1e-12)
    out = cv2.calibrateCameraExtended(o, i, size, None, None, flags=_flags(options), criteria=crit)
    _, K, dist, _, _, std_in, _, per_view = out
    std = std_in.ravel()[[0, 1, 2, 3, 4, 5, 6, 7, 8]] if std_in.size >= 9 else np.full(9, np.nan)
    return K, dist.ravel()[:5], per_view.ravel(), std


def fisheye_to_standard(K: np.ndarray, D: np.ndarray, size: tuple[int, int], name: str) -> tuple[Camera, float]:
    """Re-express an OpenCV fisheye lens (K, D (4,)) in the pinhole + [k1 k2 p1 p2 k3] model.

    Rays through a grid of pixels are found with the fisheye model; the standard
    coefficients that map those rays back to the same pixels (with the same K) are
    linear least squares. -> (Camera, max error in px over the grid by Camera.project)
    """
    W, H = size
    K = np.asarray(K, np.float64)
    D = np.asarray(D, np.float64)
    u, v = np.meshgrid(np.linspace(0, W - 1, 41), np.linspace(0, H - 1, 41))
    px = np.stack([u.ravel(), v.ravel()], -1)
    rays = cv2.fisheye.undistortPoints(px.reshape(-1, 1, 2).astype(np.float64), K, D.reshape(4, 1)).reshape(-1, 2)
    x, y = rays[:, 0], rays[:, 1]
    xd = (px[:, 0] - K[0, 2] - K[0, 1] * (px[:, 1] - K[1, 2]) / K[1, 1]) / K[0, 0]
    yd = (px[:, 1] - K[1, 2]) / K[1, 1]
    r2 = x * x + y * y
    A = np.zeros((2 * len(x), 5))
    A[0::2] = np.stack([x * r2, x * r2**2, 2 * x * y, r2 + 2 * x * x, x * r2**3], -1)
    A[1::2] = np.stack([y * r2, y * r2**2, r2 + 2 * y * y, 2 * x * y, y * r2**3], -1)
    b = np.empty(2 * len(x))
    b[0::2], b[1::2] = xd - x, yd - y
    k1, k2, p1, p2, k3 = np.linalg.lstsq(A, b, rcond=None)[0]
    cam = Camera(name, size, K, [k1, k2, p1, p2, k3])
    world = np.concatenate([rays, np.ones((len(rays), 1))], 1)  # camera frame = world frame
    err = np.linalg.norm(cam.project(world) - px, axis=-1)
    return cam, float(np.nanmax(err)) if np.isfinite(err).any() else float("inf")


def _jackknife(obj, img, size, options: IntrinsicsOptions, full: np.ndarray) -> np.ndarray:
    """Delete-a-group jackknife standard error of the 9 parameters. -> (9,)"""
    n = len(obj)
    g = min(options.jackknife_groups, n)
    if g < 3:
        return np.full(len(PARAMS), np.nan)
    groups = np.array_split(np.arange(n), g)
    estimates = []
    for grp in groups:
        keep = [k for k in range(n) if k not in set(grp.tolist())]
        K, dist, _, _ = _solve([obj[k] for k in keep], [img[k] for k in keep], size, options)
        estimates.append(_param_vector(K, dist))
    est = np.array(estimates)
    return np.sqrt((g - 1) / g * ((est - est.mean(0)) ** 2).sum(0))


def _param_vector(K: np.ndarray, dist: np.ndarray) -> np.ndarray:
    d = np.zeros(5)
    d[: min(5, dist.size)] = dist.ravel()[:5]
    return np.array([K[0, 0], K[1, 1], K[0, 2], K[1, 2], *d])


def calibrate_intrinsics(
    views: ViewDetections,
    board: Board,
    options: IntrinsicsOptions | None = None,
    progress: Progress | None = None,
) -> IntrinsicsResult:
    """Calibrate one camera from its board detections (see the module docstring)."""
    options = options or IntrinsicsOptions()
    if options.model not in MODELS:
        raise TriangulumError(f"camera model '{options.model}' is unknown; use one of {MODELS}.")
    if not views.detections:
        raise no_board_error(views.camera, board, views.frames_read)
    min_views = 3
    if len(views.detections) < min_views:
        raise TriangulumError(
            f"camera '{views.camera}': the board was found in only {len(views.detections)} frame(s); "
            f"intrinsic calibration needs at least {min_views} (better 15-30) views with the board tilted in different directions."
        )
    frames = select_views(views, board, options.max_views)
    rejected: list[int] = []
    for round_ in range(options.max_rounds + 1):
        if progress is not None:
            progress(f"calibrating {views.camera}", round_, options.max_rounds + 1)
        obj = [views.detections[f].object_points(board) for f in frames]
        img = [views.detections[f].corners for f in frames]
        try:
            K, dist, per_view, std = _solve(obj, img, views.size, options)
        except cv2.error as exc:
            raise TriangulumError(
                f"camera '{views.camera}': OpenCV could not calibrate from {len(frames)} views ({str(exc).strip().splitlines()[-1]}); "
                "film the board tilted in several directions, filling more of the image."
            ) from None
        limit = max(options.reject_factor * float(np.median(per_view)), options.reject_min_px)
        bad = [f for f, e in zip(frames, per_view, strict=True) if e > limit]
        if not bad or round_ == options.max_rounds or len(frames) - len(bad) < min_views:
            break
        rejected += bad
        frames = [f for f in frames if f not in set(bad)]
    all_pts = np.concatenate(img)
    rms = float(np.sqrt(np.sum(per_view**2 * np.array([len(p) for p in img])) / len(all_pts)))
    fisheye_fit = None
    if options.model == "fisheye":
        camera, fisheye_fit = fisheye_to_standard(K, dist, views.size, views.camera)
        camera.rmse = rms
    else:
        camera = Camera(views.camera, views.size, K, dist, rmse=rms)
    spread = _jackknife(obj, img, views.size, options, _param_vector(K, dist))
    if options.model == "fisheye":
        # Fisheye coefficients are not ours; only the pinhole part's spread is meaningful.
        spread[4:] = np.nan
    cov = coverage_map([views.detections[f] for f in frames], views.size)
    result = IntrinsicsResult(
        camera=camera,
        rms=rms,
        used=frames,
        rejected=sorted(rejected),
        view_errors={f: float(e) for f, e in zip(frames, per_view, strict=True)},
        std=dict(zip(PARAMS, map(float, std), strict=True)),
        spread=dict(zip(PARAMS, map(float, spread), strict=True)),
        coverage=cov,
        coverage_fraction=float((cov > 0).mean()),
        detected=len(views.detections),
        model=options.model,
        fisheye_fit_px=fisheye_fit,
    )
    result.warnings = intrinsics_warnings(result)
    return result


def intrinsics_warnings(r: IntrinsicsResult) -> list[str]:
    """Plain-language warnings about a calibration the user should not trust blindly."""
    out = []
    W, H = r.camera.size
    if len(r.used) < 10:
        out.append(f"only {len(r.used)} views were usable; take 15-30 with the board tilted in different directions and in every part of the image.")
    if r.coverage_fraction < 0.5:
        out.append(f"the board covered only {r.coverage_fraction:.0%} of the image; distortion and the principal point are extrapolated "
                   "elsewhere: add views with the board near the edges and corners.")
    for name, dim in (("fx", r.camera.K[0, 0]), ("fy", r.camera.K[1, 1])):
        u = r.uncertainty(name)
        if u > 0.01 * dim:
            out.append(f"{name} is uncertain by ±{u:.1f} px ({u / dim:.1%}); add views at different distances and tilts.")
    for name, dim in (("cx", W), ("cy", H)):
        u = r.uncertainty(name)
        if u > 0.01 * dim:
            out.append(f"{name} is uncertain by ±{u:.1f} px; add strongly tilted views of the board.")
    if r.rms > 1.0:
        out.append(f"the RMS error {r.rms:.2f} px is high; blurred or moving frames, a bent board or the wrong square size are likely.")
    if r.fisheye_fit_px is not None and r.fisheye_fit_px > 1.0:
        out.append(f"the fisheye lens is represented by the standard distortion model only to {r.fisheye_fit_px:.1f} px at the image edges.")
    return out


def undistort_preview(camera: Camera, image: np.ndarray, alpha: float = 0.0) -> np.ndarray:
    """The image undistorted with the camera's model (alpha 0: valid pixels only, 1: all)."""
    W, H = camera.size
    if (image.shape[1], image.shape[0]) != (W, H):
        raise TriangulumError(f"camera '{camera.name}': image is {image.shape[1]}x{image.shape[0]} but the calibration is for {W}x{H}.")
    newK, _ = cv2.getOptimalNewCameraMatrix(camera.K, camera.dist, (W, H), alpha, (W, H))
    return cv2.undistort(image, camera.K, camera.dist, None, newK)
