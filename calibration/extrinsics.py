"""Extrinsic calibration from a board seen by several cameras at the same instants.

    dets = detect_synchronised(sources, board)         # {camera: {sync index: Detection}}
    result = calibrate_extrinsics(dets, intrinsics, board)
    result.rig                                        # poses in the root camera's frame

Steps: a board pose per camera and instant (PnP); the camera graph (edge weight =
instants both cameras saw the board); initial camera poses along its
best-connected spanning tree (robust average of the relative poses over shared
instants); initial board poses; then bundle adjustment of camera poses (optionally
intrinsics) and board poses with a robust loss, a cull of outlier observations and
a second pass. The board fixes the metric scale.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from calibration.boards import Board, Detection
from calibration.bundle_adjust import (
    BundleOptions,
    BundleResult,
    Observations,
    bundle_adjust,
    params_to_pose,
    pose_to_params,
)
from calibration.camera import Camera
from calibration.camera_graph import components, graph_messages, spanning_tree
from calibration.errors import TriangulumError
from calibration.frames import FrameSource, Progress, find_sync_table, load_sync_table, session_sync
from calibration.intrinsics import detect_views, no_board_error
from calibration.rig import Rig
from calibration.world_frame import frame_from_board, frame_from_camera, transform_rig

Detections = dict[str, dict[int, Detection]]
"""{camera name: {sync index: Detection}}"""


def detect_synchronised(
    sources: list[FrameSource],
    board: Board,
    sync: dict[int, dict[str, int]] | None = None,
    step: int = 1,
    progress: Progress | None = None,
) -> tuple[Detections, dict[str, tuple[int, int]]]:
    """Detect the board in every camera; key detections by synchronised instant.

    sync: {sync index: {camera: frame index}} (load_sync_table); None takes a recorded
    session's capture times or a timestamps.csv beside the videos if there is one,
    else frame i = instant i.
    -> (detections, {camera: image size (W, H)})
    """
    if sync is None:
        folders = {Path(s.path).parent for s in sources if s.kind == "video"}
        sync = session_sync(folders.pop()) if len(folders) == 1 else None
    if sync is None:
        table = find_sync_table(sources)
        sync = load_sync_table(table, [s.name for s in sources]) if table else None
    out: Detections = {}
    sizes: dict[str, tuple[int, int]] = {}
    for src in sources:
        if sync is not None:
            frame_to_sync = {f: s for s, cams in sync.items() for c, f in cams.items() if c == src.name}
            wanted = {f for f in frame_to_sync if (frame_to_sync[f] % step) == 0}
            views = detect_views(src, board, 1, progress, indices=wanted)
            out[src.name] = {frame_to_sync[f]: d for f, d in views.detections.items()}
        else:
            views = detect_views(src, board, step, progress)
            out[src.name] = dict(views.detections)
        if not views.detections:
            raise no_board_error(src.name, board, views.frames_read)
        sizes[src.name] = views.size
    return out, sizes


# --- board poses and the camera graph -------------------------------------------------
@dataclass
class BoardPose:
    """Board -> camera transform seen at one instant. R: (3, 3); t: (3,) m; rms: PnP px."""

    R: np.ndarray
    t: np.ndarray
    rms: float
    n: int
    ambiguous: bool


def board_pose(det: Detection, board: Board, cam: Camera) -> BoardPose | None:
    """The board's pose in one camera by PnP (IPPE's two planar solutions, best kept)."""
    obj = det.object_points(board).astype(np.float64)
    img = det.corners.astype(np.float64)
    try:
        n, rvecs, tvecs, errs = cv2.solvePnPGeneric(obj, img, cam.K, cam.dist, flags=cv2.SOLVEPNP_IPPE)
    except cv2.error:
        return None
    if n == 0:
        return None
    errs = np.asarray(errs).ravel()
    best = int(np.argmin(errs))
    rvec, tvec = rvecs[best], tvecs[best]
    rvec, tvec = cv2.solvePnPRefineLM(obj, img, cam.K, cam.dist, rvec, tvec)
    R = cv2.Rodrigues(rvec)[0]
    proj = Camera(cam.name, cam.size, cam.K, cam.dist, R, tvec.ravel()).project(obj)
    rms = float(np.sqrt(np.nanmean(np.sum((proj - img) ** 2, -1))))
    # A far, small or face-on board has two nearly equally good planar poses.
    ambiguous = n > 1 and errs[1 - best] < 1.5 * errs[best] + 0.1
    if not np.isfinite(rms) or tvec.ravel()[2] <= 0:
        return None
    return BoardPose(R, tvec.ravel(), rms, len(obj), bool(ambiguous))


def shared_views(poses: dict[str, dict[int, BoardPose]], names: list[str]) -> np.ndarray:
    """Instants at which both cameras saw the board. -> (C, C) int, diagonal = own count"""
    C = len(names)
    keys = [set(poses.get(n, {})) for n in names]
    out = np.zeros((C, C), np.int64)
    for i in range(C):
        for j in range(C):
            out[i, j] = len(keys[i] & keys[j])
    return out


def _rotation_angle(R: np.ndarray) -> float:
    return float(np.degrees(np.arccos(np.clip((np.trace(R) - 1) / 2, -1, 1))))


def average_transform(Rs: list[np.ndarray], ts: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, int]:
    """Robust mean of rigid transforms: the medoid, then the mean of those near it.

    Rs: list of (3, 3); ts: list of (3,) -> (R, t, number of inliers)
    """
    n = len(Rs)
    Rs_a, ts_a = np.stack(Rs), np.stack(ts)
    ang = np.array([[_rotation_angle(Rs_a[i] @ Rs_a[j].T) for j in range(n)] for i in range(n)])
    scale = max(float(np.median(np.linalg.norm(ts_a, axis=1))), 1e-6)
    dt = np.linalg.norm(ts_a[:, None] - ts_a[None], axis=-1) / scale
    score = np.median(ang / 5.0 + dt / 0.05, axis=1)
    m = int(np.argmin(score))
    inl = (ang[m] < max(5.0, 3 * np.median(ang[m]))) & (dt[m] < max(0.05, 3 * np.median(dt[m])))
    U, _, Vt = np.linalg.svd(Rs_a[inl].sum(0))
    R = U @ np.diag([1, 1, np.linalg.det(U @ Vt)]) @ Vt
    return R, ts_a[inl].mean(0), int(inl.sum())


# --- the solver ----------------------------------------------------------------------
@dataclass
class ExtrinsicsOptions:
    """max_pnp_rms: px above which a single-view board pose is distrusted; outlier_px:
    observations worse than this (and 5x the median) after the first adjustment are
    dropped; intrinsics: parameter names to refine in the adjustment (see
    bundle_adjust.INTRINSIC_NAMES); root: camera fixed as the frame (default: the
    best connected)."""

    min_shared: int = 3
    max_pnp_rms: float = 3.0
    loss: str = "soft_l1"
    f_scale: float = 1.0
    outlier_px: float = 4.0
    intrinsics: tuple[str, ...] = ()
    root: str | None = None


@dataclass
class ExtrinsicsResult:
    """rig: cameras posed in the root camera's frame; board_poses: {sync: (6,) board->world};
    shared: (C, C) instants seen by both; tree: (parent, child, shared) names; obs /
    obs_sync / errors: the observations kept, their instants and reprojection errors (px)."""

    rig: Rig
    board_poses: dict[int, np.ndarray]
    shared: np.ndarray
    tree: list[tuple[str, str, int]]
    obs: Observations
    obs_sync: np.ndarray
    obs_corner: np.ndarray
    errors: np.ndarray
    dropped: int
    bundle: BundleResult
    board_points: np.ndarray
    warnings: list[str] = field(default_factory=list)

    def per_camera_rms(self) -> dict[str, float]:
        return {
            name: float(np.sqrt(np.mean(self.errors[self.obs.camera == c] ** 2))) if np.any(self.obs.camera == c) else float("nan")
            for c, name in enumerate(self.rig.names)
        }

    def tracks(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Observations as tracks for the quality report.

        -> (points (C, N, 2) px NaN where unseen, instant (N,), world position (N, 3))
        with one track per (instant, corner) kept by the adjustment.
        """
        keys = np.stack([self.obs_sync, self.obs_corner], 1)
        uniq, inv = np.unique(keys, axis=0, return_inverse=True)
        inv = inv.ravel()
        pts = np.full((len(self.rig), len(uniq), 2), np.nan)
        pts[self.obs.camera, inv] = self.obs.points
        world = np.full((len(uniq), 3), np.nan)
        for n, (sync, corner) in enumerate(uniq):
            R, t = params_to_pose(self.board_poses[int(sync)])
            world[n] = R @ self.board_points[int(corner)] + t
        return pts, uniq[:, 0], world

    def set_world(self, s: float, R: np.ndarray, t: np.ndarray, label: str) -> None:
        """Re-express the rig and board poses in the world X' = s R X + t."""
        self.rig = transform_rig(self.rig, s, R, t)
        self.rig.metadata["world"] = label
        for k, p in self.board_poses.items():
            Rb, tb = params_to_pose(p)
            self.board_poses[k] = pose_to_params(R @ Rb, s * R @ tb + t)
        self.board_points = self.board_points * s

    def summary(self) -> str:
        lines = [f"extrinsics: median reprojection error {np.median(self.errors):.3f} px over {len(self.errors)} corners "
                 f"({self.dropped} outliers dropped), {len(self.board_poses)} board poses"]
        lines += [f"  {n}: RMS {e:.3f} px" for n, e in self.per_camera_rms().items()]
        lines += [f"  tree: {p} -> {c} ({k} shared views)" for p, c, k in self.tree]
        lines += [f"  warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def _to_h(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R, t
    return T


def calibrate_extrinsics(
    detections: Detections,
    intrinsics: Rig,
    board: Board,
    options: ExtrinsicsOptions | None = None,
    progress: Progress | None = None,
) -> ExtrinsicsResult:
    """Pose every camera from synchronised board detections (see the module docstring).

    detections: {camera: {sync: Detection}} for the cameras of `intrinsics`, in its order.
    """
    options = options or ExtrinsicsOptions()
    if board.kind != "charuco":
        raise TriangulumError(
            "extrinsic calibration needs a ChArUco board: a checkerboard looks the same turned around, "
            "so cameras on opposite sides cannot agree on which corner is which."
        )
    names = intrinsics.names
    missing = [n for n in names if n not in detections]
    if missing:
        raise TriangulumError(f"no detections for camera(s) {missing}; give one --source per camera of the intrinsics file.")
    if len(names) < 2:
        raise TriangulumError("extrinsic calibration needs at least two cameras.")
    # 1. Board pose per camera and instant.
    poses: dict[str, dict[int, BoardPose]] = {}
    for n in names:
        cam = intrinsics[n]
        poses[n] = {}
        for s, det in detections[n].items():
            p = board_pose(det, board, cam)
            if p is not None and p.rms <= options.max_pnp_rms:
                poses[n][s] = p
        if not poses[n]:
            raise TriangulumError(
                f"camera '{n}': no board pose fits within {options.max_pnp_rms} px; are its intrinsics "
                f"for this camera and resolution {cam.size}, and is the square size right?"
            )
    if progress is not None:
        progress("board poses", 1, 1)
    # 2. Camera graph.
    shared = shared_views(poses, names)
    groups = components(shared, options.min_shared)
    if len(groups) > 1:
        parts = " | ".join(", ".join(names[i] for i in g) for g in groups)
        worst = graph_messages(shared, names, options.min_shared)
        raise TriangulumError(
            f"could not link all cameras: groups [{parts}] share fewer than {options.min_shared} views of the board "
            f"with each other. {worst[0] if worst else ''}"
        )
    warnings = graph_messages(shared, names, options.min_shared)
    root = names.index(options.root) if options.root else int(np.argmax(shared.sum(1) - np.diag(shared)))
    tree = spanning_tree(shared, root, options.min_shared)
    # 3. Initial camera poses along the tree (world = root camera).
    T_world = {root: np.eye(4)}  # world -> camera
    for parent, child in tree:
        Rs, ts = [], []
        for s in set(poses[names[parent]]) & set(poses[names[child]]):
            a, b = poses[names[parent]][s], poses[names[child]][s]
            if a.ambiguous and b.ambiguous:
                continue
            T = _to_h(b.R, b.t) @ np.linalg.inv(_to_h(a.R, a.t))  # parent cam -> child cam
            Rs.append(T[:3, :3])
            ts.append(T[:3, 3])
        if not Rs:
            raise TriangulumError(f"cameras {names[parent]} and {names[child]}: every shared view of the board is ambiguous; film it closer and tilted.")
        R, t, _ = average_transform(Rs, ts)
        T_world[child] = _to_h(R, t) @ T_world[parent]
    rig0 = Rig([Camera(n, intrinsics[n].size, intrinsics[n].K, intrinsics[n].dist, T_world[i][:3, :3], T_world[i][:3, 3])
                for i, n in enumerate(names)], dict(intrinsics.metadata))
    # 4. Initial board poses (board -> world), from the views that agree best.
    syncs = sorted({s for n in names for s in poses[n]})
    board_T: dict[int, np.ndarray] = {}
    for s in syncs:
        Rs, ts, rms = [], [], []
        for i, n in enumerate(names):
            p = poses[n].get(s)
            if p is not None:
                T = np.linalg.inv(T_world[i]) @ _to_h(p.R, p.t)
                Rs.append(T[:3, :3])
                ts.append(T[:3, 3])
                rms.append(p.rms + (10.0 if p.ambiguous else 0.0))
        if len(Rs) >= 3:
            R, t, _ = average_transform(Rs, ts)
        else:  # two views cannot outvote each other: trust the cleaner one
            k = int(np.argmin(rms))
            R, t = Rs[k], ts[k]
        board_T[s] = pose_to_params(R, t)
    # 5. Observations of every detected corner at instants with a board pose.
    sync_index = {s: k for k, s in enumerate(syncs)}
    cam_l, el_l, pts_l, loc_l, sy_l, id_l = [], [], [], [], [], []
    for i, n in enumerate(names):
        for s, det in detections[n].items():
            if s not in sync_index:
                continue
            cam_l.append(np.full(len(det), i))
            el_l.append(np.full(len(det), sync_index[s]))
            pts_l.append(det.corners)
            loc_l.append(det.object_points(board))
            sy_l.append(np.full(len(det), s))
            id_l.append(det.ids)
    obs = Observations(np.concatenate(cam_l), np.concatenate(el_l), np.concatenate(pts_l), np.concatenate(loc_l))
    obs_sync, obs_corner = np.concatenate(sy_l), np.concatenate(id_l)
    structure = np.stack([board_T[s] for s in syncs])
    # 6. Adjust, drop outliers, adjust again.
    bopts = BundleOptions(loss=options.loss, f_scale=options.f_scale, intrinsics=options.intrinsics, fixed_cameras=(root,))
    if progress is not None:
        progress("bundle adjustment", 0, 2)
    res = bundle_adjust(rig0, obs, structure, bopts)
    err = res.errors
    limit = max(options.outlier_px, 5 * float(np.nanmedian(err)))
    keep = np.isfinite(err) & (err <= limit)
    dropped = int((~keep).sum())
    if dropped:
        obs, obs_sync, obs_corner = obs.subset(keep), obs_sync[keep], obs_corner[keep]
        res = bundle_adjust(res.rig, obs, res.structure, bopts)
    if progress is not None:
        progress("bundle adjustment", 2, 2)
    rig = res.rig
    rig.metadata["adjusted"] = True
    for c, cam in enumerate(rig.cameras):
        e = res.errors[obs.camera == c]
        cam.rmse = float(np.sqrt(np.mean(e**2))) if e.size else None
    return ExtrinsicsResult(
        rig=rig,
        board_poses={s: res.structure[k] for s, k in sync_index.items()},
        shared=shared,
        tree=[(names[p], names[c], int(shared[p, c])) for p, c in tree],
        obs=obs,
        obs_sync=obs_sync,
        obs_corner=obs_corner,
        errors=res.errors,
        dropped=dropped,
        bundle=res,
        board_points=board.object_points.copy(),
        warnings=warnings,
    )


def set_world_frame(result: ExtrinsicsResult, spec: str) -> None:
    """Choose the world frame of an extrinsic calibration.

    spec: "camera:NAME" (that camera's frame), "board:SYNC" (the board at that instant
    lies on the floor: origin at its corner, Z up) or "board:first" (the first instant
    at which the board was seen).
    """
    kind, _, arg = spec.partition(":")
    if kind == "camera":
        name = arg or result.rig.names[0]
        R, t = frame_from_camera(result.rig, name)
        result.set_world(1.0, R, t, f"camera {name}")
    elif kind == "board":
        syncs = sorted(result.board_poses)
        if arg in ("", "first"):
            sync = syncs[0]
        else:
            try:
                sync = int(arg)
            except ValueError:
                raise TriangulumError(f"world frame '{spec}': give board:INSTANT with an instant number, or board:first.") from None
            if sync not in result.board_poses:
                near = min(syncs, key=lambda k: abs(k - sync))
                raise TriangulumError(f"world frame '{spec}': the board has no pose at instant {sync} (nearest with one: {near}).")
        R, t = frame_from_board(*params_to_pose(result.board_poses[sync]))
        result.set_world(1.0, R, t, f"z-up, board on the floor at instant {sync}")
    else:
        raise TriangulumError(f"world frame '{spec}' is unknown; use camera:NAME, board:INSTANT or board:first.")
