"""`triangulum eval`: a reconstruction against a reference of the same take (a marker system's
C3D or TRC, another markerless tool's TRC, or a synthetic truth), joint by joint.

    report = evaluate(load_people(PRED), load_people(REF), joint_map)
    write_report(report, OUT_DIR)   # eval.json, joint_errors.csv, bland_altman.png

Files: our poses3d.npz (every person), TRC (one person; any marker set, m/cm/mm), C3D (one
person, the file's units) and our CSV. Joints are matched by name: every name is brought to
our joint names (`canonical`: OpenSim/Pose2Sim marker names such as RHip, LBigToe, Neck and
our own), or by an explicit table (`--map`, TOML `[joints] pred_name = "ref_name"`). Frames
are matched by index after `offset` (a reference that starts later has a positive offset),
and the rates must agree.

Each frame, every reference person is matched to the closest predicted person (lowest
MPJPE; one prediction per person); errors are over matched pairs, so one file of several
people is scored against another. Reported: per joint mean / median / p90 error and the
frames it was scored on; MPJPE, P-MPJPE, PCK@150 mm; PCP per limb class and person
(training.metrics.multi_person_pcp, the Shelf/Campus score: a reference person with no
prediction scores 0), when the joints allow the limbs; N-MPJPE; EpipolarPose's PSS (k = 50,
clusters fitted on the training subjects' motion capture when it is reachable, poses turned
to face one way); and a Bland-Altman plot per axis.
"""

from __future__ import annotations

import csv
import json
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from calibration.errors import TriangulumError
from training.metrics import match_frames, multi_person_pcp, n_mpjpe, p_mpjpe, pck


@dataclass
class People:
    """A file's people: names (J,) as the file calls its joints; joints (N, F, J, 3) world metres
    Z up, NaN missing; ids (N,); fps; source path."""

    names: tuple[str, ...]
    joints: np.ndarray
    ids: list[int]
    fps: float
    source: Path


@cache
def _marker_table() -> dict[str, str]:
    from app.export.trc import marker_names
    from engines.skeleton import all_skeletons

    table: dict[str, str] = {}
    for sk in all_skeletons().values():
        for joint, marker in zip(sk.joints, marker_names(sk, "opensim"), strict=True):
            table.setdefault(marker.lower(), joint)
            table.setdefault(joint.lower(), joint)
    return table


def canonical(name: str) -> str:
    """Our joint name for a file's joint or marker name (RHip -> right_hip), else the name."""
    return _marker_table().get(name.strip().lower(), name.strip())


def _read_c3d(path: Path) -> tuple[tuple[str, ...], np.ndarray, float]:
    import c3d

    try:
        with path.open("rb") as fh:
            reader = c3d.Reader(fh)
            labels = tuple(s.strip() for s in reader.point_labels)
            units = reader.get("POINT:UNITS").string_value.strip().lower() if reader.get("POINT:UNITS") else "mm"
            frames = [pts.copy() for _, pts, _ in reader.read_frames()]
            rate = float(reader.point_rate)
    except (OSError, ValueError, AssertionError, KeyError) as exc:
        raise TriangulumError(f"{path} cannot be read as C3D ({exc}); is it a C3D file?") from None
    scale = {"mm": 1e-3, "cm": 1e-2, "m": 1.0}.get(units, 1e-3)
    pts = np.stack(frames)  # (F, M, 5): x y z residual cameras
    xyz = np.where((pts[..., 3:4] >= 0), pts[..., :3] * scale, np.nan)
    return labels, xyz, rate


def load_people(path: str | Path) -> People:
    """The people of an npz, TRC, C3D or CSV file (module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise TriangulumError(f"{path} does not exist; give a poses3d.npz, .trc, .c3d or .csv file.")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            if "person_ids" not in z.files:
                raise TriangulumError(f"{path} is not a triangulum poses3d.npz (no person_ids).")
            ids = [int(i) for i in z["person_ids"]]
            if not ids:
                raise TriangulumError(f"{path} holds no reconstructed person.")
            joints = np.stack([z[f"person{i}_joints"] for i in ids])
            return People(tuple(str(n) for n in z["joint_names"]), joints, ids, float(z["fps"]), path)
    if suffix == ".trc":
        from app.export.trc import read_trc

        trc = read_trc(path)
        return People(trc.names, trc.world[None], [0], trc.rate, path)
    if suffix == ".c3d":
        names, xyz, rate = _read_c3d(path)
        return People(names, xyz[None], [0], rate, path)
    if suffix == ".csv":
        from app.export.csv_io import read_csv

        names, times, joints = read_csv(path)
        fps = 1.0 / float(np.median(np.diff(times))) if len(times) > 1 else 0.0
        return People(tuple(names), joints[None], [0], fps, path)
    raise TriangulumError(f"{path}: unknown file type {suffix!r}; give a poses3d.npz, .trc, .c3d or .csv file.")


def read_joint_map(path: str | Path) -> dict[str, str]:
    """`[joints] pred_name = "ref_name"` from a TOML file."""
    try:
        table = tomllib.loads(Path(path).read_text()).get("joints")
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise TriangulumError(f"--map {path}: {exc}") from None
    if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
        raise TriangulumError(f'--map {path} needs a [joints] table of pred_name = "ref_name" lines.')
    return table


def pair_joints(pred: People, ref: People, joint_map: dict[str, str] | None = None) -> list[tuple[int, int, str]]:
    """(pred index, ref index, our name) of every joint both files have."""
    if joint_map:
        pi = {n: i for i, n in enumerate(pred.names)}
        ri = {n: i for i, n in enumerate(ref.names)}
        missing = [k for k in joint_map if k not in pi] + [v for v in joint_map.values() if v not in ri]
        if missing:
            raise TriangulumError(f"--map names joints the files lack: {missing}.")
        return [(pi[k], ri[v], canonical(k)) for k, v in joint_map.items()]
    ri = {canonical(n): i for i, n in enumerate(ref.names)}
    pairs = [(i, ri[canonical(n)], canonical(n)) for i, n in enumerate(pred.names) if canonical(n) in ri]
    if not pairs:
        raise TriangulumError(f"{pred.source.name} and {ref.source.name} share no joint names "
                              f"({list(pred.names[:4])}... vs {list(ref.names[:4])}...); give --map.")
    return pairs


@dataclass
class EvalReport:
    """What `evaluate` measured (module docstring); per_joint: name -> statistics (m)."""

    joints: list[str]
    per_joint: dict[str, dict[str, float]]
    summary: dict[str, float]
    pcp: dict | None
    frames: int
    pairs: tuple[np.ndarray, np.ndarray]  # matched (M, J, 3) prediction and reference points


def evaluate(pred: People, ref: People, joint_map: dict[str, str] | None = None, offset: int = 0) -> EvalReport:
    """Score `pred` against `ref` (module docstring)."""
    if pred.fps and ref.fps and abs(pred.fps - ref.fps) > 1e-3 * max(pred.fps, ref.fps):
        raise TriangulumError(f"the rates differ ({pred.fps:g} vs {ref.fps:g} fps); resample one file to the "
                              "other's rate first.")
    pairs = pair_joints(pred, ref, joint_map)
    names = [n for _, _, n in pairs]
    P = pred.joints[:, :, [p for p, _, _ in pairs]]
    R = ref.joints[:, :, [r for _, r, _ in pairs]]
    P = P[:, max(offset, 0):]
    R = R[:, max(-offset, 0):]
    F = min(P.shape[1], R.shape[1])
    if F <= 0:
        raise TriangulumError(f"no frames overlap with offset {offset} ({pred.joints.shape[1]} vs "
                              f"{ref.joints.shape[1]} frames).")
    P, R = P[:, :F], R[:, :F]
    matched = match_frames(P, R)  # (G, F)
    g, f = np.nonzero(matched >= 0)
    if not len(g):
        raise TriangulumError("no frame has a predicted and a reference person to compare; check the offset "
                              "and that both files are the same take.")
    got, want = P[matched[g, f], f], R[g, f]
    err = np.linalg.norm(got - want, axis=-1)  # (M, J)
    per_joint = {}
    for j, name in enumerate(names):
        e = err[:, j][np.isfinite(err[:, j])]
        per_joint[name] = ({"mean": float(e.mean()), "median": float(np.median(e)),
                            "p90": float(np.percentile(e, 90)), "frames": int(e.size)} if e.size else
                           {"mean": float("nan"), "median": float("nan"), "p90": float("nan"), "frames": 0})
    fin = err[np.isfinite(err)]
    summary = {"mpjpe": float(fin.mean()), "median": float(np.median(fin)), "n_mpjpe": n_mpjpe(got, want),
               "p_mpjpe": p_mpjpe(got, want), "pck150": pck(got, want, 0.150), "poses": int(len(got))}
    pss = _pss(got, want, names)
    if pss is not None:
        summary["pss50"] = pss
    return EvalReport(names, per_joint, summary, _pcp(P, R, names, matched), F, (got, want))


def _pss(got: np.ndarray, want: np.ndarray, names: list[str]) -> float | None:
    """EpipolarPose's PSS (k = 50) with the clusters fitted on the training subjects' motion
    capture (training.mocap), in the joints both files have, every pose turned to face +Y and
    centred on the pelvis. None without the motion capture or without both hips."""
    from engines.skeleton import BLAZEPOSE33, named_points
    from training.metrics import face_forward, pose_structure_score
    from training.mocap import MOCAP_DIR, TRAIN_SUBJECTS, load_clips

    need = ("left_hip", "right_hip")
    if not all(n in names for n in need) or not (MOCAP_DIR / "bvh").is_dir():
        return None
    try:
        train = np.concatenate(list(load_clips(subjects=TRAIN_SUBJECTS, step=8).values()))
        train = named_points(train, BLAZEPOSE33, names + ["pelvis"])
    except TriangulumError:
        return None  # a joint the motion capture does not have
    left, right = names.index("left_hip"), names.index("right_hip")

    def prep(x: np.ndarray) -> np.ndarray:
        x = np.concatenate([x, x[:, [left, right]].mean(1, keepdims=True)], 1)
        return face_forward(x, left, right)

    ok = np.isfinite(got).all((1, 2)) & np.isfinite(want).all((1, 2))
    if ok.sum() < 1:
        return None
    return pose_structure_score(prep(got[ok]), prep(want[ok]), root=len(names), k=50, training=face_forward(train, left, right))


def _pcp(P: np.ndarray, R: np.ndarray, names: list[str], matched: np.ndarray) -> dict | None:
    from engines.detector_skeletons import KNOWN_JOINTS, custom_skeleton

    keep = [i for i, n in enumerate(names) if n in KNOWN_JOINTS]  # the limb ends are among them
    try:
        sk = custom_skeleton("eval", tuple(names[i] for i in keep))
        score = multi_person_pcp(P[..., keep, :], R[..., keep, :], sk, matched=matched)
    except (ValueError, TriangulumError):
        return None  # the joints do not make the PCP limbs
    return {"classes": score.classes, "per_person": score.per_person.tolist(), "average": score.average,
            "id_switches": score.id_switches.tolist()}


def bland_altman(report: EvalReport, path: Path) -> Path:
    """Difference against mean of the two measurements, per world axis, over every matched
    joint: bias and 95 % limits of agreement (mean +- 1.96 SD)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    got, want = report.pairs
    fig, axes = plt.subplots(1, 3, figsize=(13, 4), sharey=True)
    for a, (ax, label) in enumerate(zip(axes, "XYZ", strict=True)):
        mean = ((got[..., a] + want[..., a]) / 2).ravel()
        diff = (got[..., a] - want[..., a]).ravel()
        ok = np.isfinite(mean) & np.isfinite(diff)
        mean, diff = mean[ok], diff[ok] * 1000
        bias, sd = float(diff.mean()), float(diff.std())
        ax.scatter(mean, diff, s=2, alpha=0.3)
        for y, style in ((bias, "-"), (bias + 1.96 * sd, "--"), (bias - 1.96 * sd, "--")):
            ax.axhline(y, color="k", linestyle=style, linewidth=1)
        ax.set_title(f"{label}: bias {bias:.1f} mm, limits {bias - 1.96 * sd:.1f} to {bias + 1.96 * sd:.1f}")
        ax.set_xlabel(f"mean of the two, {label} (m)")
    axes[0].set_ylabel("prediction - reference (mm)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(report: EvalReport, out: Path, pred: Path, ref: Path) -> list[Path]:
    """eval.json, joint_errors.csv and bland_altman.png in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    data = {"prediction": str(pred), "reference": str(ref), "frames": report.frames, "summary_m": report.summary,
            "per_joint_m": report.per_joint, "pcp": report.pcp}
    (out / "eval.json").write_text(json.dumps(data, indent=2))
    with (out / "joint_errors.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["joint", "mean_mm", "median_mm", "p90_mm", "frames"])
        for name, s in report.per_joint.items():
            w.writerow([name, f"{1000 * s['mean']:.2f}", f"{1000 * s['median']:.2f}", f"{1000 * s['p90']:.2f}", s["frames"]])
    return [out / "eval.json", out / "joint_errors.csv", bland_altman(report, out / "bland_altman.png")]


def format_report(report: EvalReport) -> str:
    """The per-joint table, the summary and PCP as text."""
    lines = [f"{'joint':<18} {'mean mm':>8} {'median':>8} {'p90':>8} {'frames':>7}"]
    for name, s in report.per_joint.items():
        lines.append(f"{name:<18} {1000 * s['mean']:8.1f} {1000 * s['median']:8.1f} {1000 * s['p90']:8.1f} {s['frames']:7d}")
    s = report.summary
    pss = f", PSS@50 {100 * s['pss50']:.1f} %" if "pss50" in s else ""
    lines.append(f"MPJPE {1000 * s['mpjpe']:.1f} mm (median {1000 * s['median']:.1f}), N-MPJPE "
                 f"{1000 * s['n_mpjpe']:.1f} mm, P-MPJPE {1000 * s['p_mpjpe']:.1f} mm, PCK@150mm "
                 f"{100 * s['pck150']:.1f} %{pss}, over {s['poses']} poses")
    if report.pcp:
        lines.append("PCP % (alpha 0.5; head limb thorax-nose): " + ", ".join(
            f"{c} {np.nanmean([p[i] for p in report.pcp['per_person']]):.1f}" for i, c in enumerate(report.pcp["classes"]))
            + f"; average {report.pcp['average']:.1f}")
        for g, p in enumerate(report.pcp["per_person"]):
            lines.append(f"  reference person {g}: " + ", ".join(f"{c} {v:.1f}" for c, v in zip(report.pcp["classes"], p, strict=True)))
    return "\n".join(lines)
