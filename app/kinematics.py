"""Joint angles: an OpenSim model scaled to the performer, then OpenSim inverse kinematics on
our TRC.

The musculoskeletal model, its marker sets and the IK task weights are Pose2Sim's (the
``OpenSim_Setup`` folder of the ``pose2sim`` package, BSD-3-Clause): they are the setups the
markerless community validates its joint angles with, and they have a marker set for each 2D
skeleton we produce. The model is ``Model_Pose2Sim_simple.osim`` by default (the full body
without muscles or coupling constraints: the same joint coordinates, an IK several times
faster); ``model="full"`` takes ``Model_Pose2Sim_muscles_flex.osim``. Only data files are read
from Pose2Sim; scaling and IK are OpenSim's own (``Model.scale``, ``InverseKinematicsTool``).

Scaling: each of the scaling setup's measurements (torso, thigh, shank...) compares the
distances of its marker pairs in the TRC with the same distances on the unscaled model. A
moving take is not a static trial, so the experimental distance is a trimmed mean over the
frames where the markers are slowest: the 10 % fastest frames and the extreme half of the
distances are left out (the left and right pairs of a segment are pooled, so the scaled model
is symmetric). The setup's bodies get that ratio on all three axes; mass is redistributed.

Inverse kinematics runs on the frames where enough of the weighted markers are present (a frame
with too few would let the solver wander); the others are left out of the motion file and
counted in the result.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from app.export.trc import read_trc, write_trc
from calibration.errors import TriangulumError
from engines.skeleton import Skeleton

if TYPE_CHECKING:
    from app.process.take import TakeResult

log = logging.getLogger(__name__)

INSTALL = "pip install 'triangulum[opensim]' && pip install --no-deps pose2sim (OpenSim, and Pose2Sim's model files)"
# Our skeleton -> Pose2Sim's marker set: the suffix of its Markers_*, Scaling_Setup_* and
# IK_Setup_* files (any of those suffixes can be given as `marker_set`, e.g. body25b).
SETUPS = {"blazepose33": "blazepose", "coco17": "coco17", "body25": "body25", "body25b": "body25b",
          "halpe26": "halpe26"}
MODELS = {"simple": "Model_Pose2Sim_simple.osim", "full": "Model_Pose2Sim_muscles_flex.osim"}
# The angles a gait lab reads first; names are the model's coordinates (degrees in the .mot).
MAIN_ANGLES = ("hip_flexion", "knee_angle", "ankle_angle")


@dataclass(frozen=True)
class KinematicsConfig:
    """height: m, written into the scaled model (OpenSim scales by markers, not height);
    mass: kg, the scaled model's total mass; model: one of MODELS; min_markers: IK runs on
    frames with at least this many of the markers the IK setup weights 1 or more;
    fastest_share: share of the fastest frames left out of scaling; trim: share of the
    distances cut at each end before averaging."""

    height: float | None = None
    mass: float = 70.0
    model: str = "simple"
    min_markers: int = 8
    fastest_share: float = 0.1
    trim: float = 0.25

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise TriangulumError(f"Unknown OpenSim model {self.model!r}; choose {' or '.join(MODELS)}.")
        if not (self.mass > 0 and (self.height is None or 0.5 < self.height < 2.8)):
            raise TriangulumError(
                f"Participant mass {self.mass} kg / height {self.height} m are not plausible; give --mass in kg "
                "and --height in metres (e.g. --height 1.72)."
            )


@dataclass
class KinematicsResult:
    """One person's kinematics. times: (T,) s; angles: coordinate -> (T,) degrees (metres for
    translations); marker_rms, marker_max: (T,) m, IK marker error per frame; scales: body ->
    factor; frames_skipped: take frames left out of IK (too few markers)."""

    person: int
    model: Path
    motion: Path
    marker_errors: Path
    plot: Path
    times: np.ndarray
    angles: dict[str, np.ndarray]
    marker_rms: np.ndarray
    marker_max: np.ndarray
    scales: dict[str, float]
    frames_skipped: int
    setup_files: list[Path] = field(default_factory=list)

    @property
    def files(self) -> list[Path]:
        return [self.model, self.motion, self.marker_errors, self.plot, *self.setup_files]

    def summary(self) -> dict:
        """JSON-ready numbers for report.json."""
        main = {}
        for angle in MAIN_ANGLES:
            for s in ("r", "l"):
                v = self.angles.get(f"{angle}_{s}")
                if v is not None and len(v):
                    main[f"{angle}_{s}"] = {"min": float(v.min()), "max": float(v.max()), "mean": float(v.mean())}
        return {
            "model": self.model.name,
            "motion": self.motion.name,
            "frames": int(len(self.times)),
            "frames_skipped": self.frames_skipped,
            "marker_rms_m": {"median": float(np.median(self.marker_rms)), "max": float(self.marker_max.max())},
            "scales": {k: round(v, 4) for k, v in self.scales.items()},
            "angles_deg": main,
        }


def setup_dir() -> Path:
    """Pose2Sim's OpenSim_Setup folder (found without importing Pose2Sim and its dependencies)."""
    spec = importlib.util.find_spec("Pose2Sim")
    folder = Path(next(iter(spec.submodule_search_locations))) / "OpenSim_Setup" if spec else None
    if folder is None or not (folder / MODELS["simple"]).is_file():
        raise TriangulumError(f"Joint angles need Pose2Sim's OpenSim models, which are not installed: {INSTALL}.")
    return folder


def check_available() -> None:
    """Raise our error (with the install command) unless OpenSim and the model files are here."""
    try:
        import opensim  # noqa: F401
    except ImportError:
        raise TriangulumError(f"Joint angles need OpenSim, which is not installed: {INSTALL}.") from None
    setup_dir()


def marker_set(skeleton: Skeleton) -> str:
    """The Pose2Sim marker set our TRC of this skeleton is written for."""
    try:
        return SETUPS[skeleton.name]
    except KeyError:
        raise TriangulumError(
            f"No OpenSim marker set for the {skeleton.name} skeleton; joint angles are available for "
            f"{', '.join(SETUPS)}."
        ) from None


def _setup_file(folder: Path, prefix: str, suffix: str) -> Path:
    for path in folder.iterdir():  # Pose2Sim's file names differ in case (BlazePose, Blazepose)
        if path.name.lower() == f"{prefix}{suffix}.xml":
            return path
    have = sorted(p.name[len("markers_"):-4] for p in folder.iterdir() if p.name.lower().startswith("markers_"))
    raise TriangulumError(f"Pose2Sim has no OpenSim setup {prefix}{suffix}.xml for the marker set {suffix!r} "
                          f"(its marker sets: {', '.join(have)}).")


def measurements(scaling_setup: Path) -> list[tuple[str, list[tuple[str, str]], list[str]]]:
    """The scaling setup's measurements: (name, marker pairs, bodies scaled), those applied."""
    out = []
    for m in ET.parse(scaling_setup).getroot().iter("Measurement"):
        if (m.findtext("apply") or "true").strip().lower() != "true":
            continue
        pairs = [tuple(p.text.split()) for p in m.iter("markers") if p.text and len(p.text.split()) == 2]
        bodies = [b.get("name") for b in m.iter("BodyScale")]
        out.append((m.get("name"), pairs, bodies))
    return out


def ik_weights(ik_setup: Path) -> dict[str, float]:
    """Marker -> weight of the IK setup's applied marker tasks."""
    weights = {}
    for task in ET.parse(ik_setup).getroot().iter("IKMarkerTask"):
        if (task.findtext("apply") or "true").strip().lower() == "true":
            weights[task.get("name")] = float(task.findtext("weight") or 1.0)
    return weights


def scale_factors(
    points: np.ndarray,
    names: tuple[str, ...],
    model_markers: dict[str, np.ndarray],
    setup: list[tuple[str, list[tuple[str, str]], list[str]]],
    fastest_share: float = 0.1,
    trim: float = 0.25,
) -> dict[str, float]:
    """Measurement name -> experimental / model distance of its marker pairs.

    points: (F, M, 3) metres, NaN missing, columns named by `names`; model_markers: name ->
    (3,) position on the unscaled model. Measurements none of whose pairs is seen are absent.
    """
    col = {n: i for i, n in enumerate(names)}
    speed = np.linalg.norm(np.diff(points, axis=0), axis=-1)  # (F-1, M)
    speed = np.nanmean(np.concatenate([speed[:1], speed]), axis=1)  # (F,) mean marker speed
    with np.errstate(invalid="ignore"):
        calm = ~(speed > np.nanquantile(speed, 1 - fastest_share)) if np.isfinite(speed).any() else np.ones(len(points), bool)
    factors = {}
    for name, pairs, _ in setup:
        ratios = []
        for a, b in pairs:
            if a not in col or b not in col or a not in model_markers or b not in model_markers:
                continue
            d = np.linalg.norm(points[calm, col[a]] - points[calm, col[b]], axis=-1)
            d = d[np.isfinite(d)]
            model = float(np.linalg.norm(model_markers[a] - model_markers[b]))
            if len(d) and model > 1e-6:
                ratios.append(d / model)
        if not ratios:
            continue
        r = np.sort(np.concatenate(ratios))  # left and right pairs pooled: a symmetric model
        cut = int(len(r) * trim)
        factors[name] = float(r[cut: len(r) - cut].mean() if len(r) > 2 * cut else np.median(r))
    return factors


def _scale_model(folder: Path, markers_name: str, config: KinematicsConfig, points: np.ndarray,
                 names: tuple[str, ...], out: Path) -> dict[str, float]:
    import opensim

    model = opensim.Model(str(folder / MODELS[config.model]))
    model.set_MarkerSet(opensim.MarkerSet(str(_setup_file(folder, "markers_", markers_name))))
    state = model.initSystem()
    markers = model.getMarkerSet()
    model_markers = {markers.get(i).getName(): markers.get(i).getLocationInGround(state).to_numpy()
                     for i in range(markers.getSize())}
    setup = measurements(_setup_file(folder, "scaling_setup_pose2sim_", markers_name))
    factors = scale_factors(points, names, model_markers, setup, config.fastest_share, config.trim)
    missing = [name for name, _, _ in setup if name not in factors]
    if len(missing) == len(setup):
        raise TriangulumError(
            "Cannot scale the OpenSim model: no segment's markers were seen (check that the TRC has "
            f"the marker set's names, e.g. {', '.join(list(model_markers)[:4])})."
        )
    fallback = float(np.median(list(factors.values())))
    if missing:
        log.warning("kinematics: segments %s were not seen; scaled by the median factor %.3f", missing, fallback)
    bodies = {model.getBodySet().get(i).getName() for i in range(model.getBodySet().getSize())}
    scale_set = opensim.ScaleSet()
    scales: dict[str, float] = {}
    for name, _, segment_bodies in setup:
        for body in segment_bodies:
            if body in bodies and body not in scales:
                scales[body] = factors.get(name, fallback)
    for body, s in scales.items():
        scale = opensim.Scale()
        scale.setSegmentName(body)
        scale.setScaleFactors(opensim.Vec3(s, s, s))
        scale.setApply(True)
        scale_set.cloneAndAppend(scale)
    model.scale(state, scale_set, True, config.mass)
    model.setName(out.stem)
    if config.height is not None:
        model.set_credits(f"participant height {config.height:.3f} m, mass {config.mass:g} kg (Triangulum)")
    model.printToXML(str(out))
    return scales


@contextlib.contextmanager
def _opensim_log(path: Path):
    """OpenSim's messages (its logger and the C++ code's own prints to stdout) go to `path`
    instead of the console, where they would bury our summary."""
    import opensim

    from app.progress import console_to

    with console_to(str(path)):
        # The default sink is opensim.log in the working directory: leave it before logging anything.
        opensim.Logger.removeFileSink()
        opensim.Logger.addFileSink(str(path))
        opensim.Logger.setLevelString("Info")
        try:
            yield
        finally:
            opensim.Logger.removeFileSink()


def read_motion(path: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """An OpenSim .mot/.sto file -> (times (T,), column -> (T,))."""
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip().lower() == "endheader") + 1
    except StopIteration:
        raise TriangulumError(f"{path} is not an OpenSim storage file (no endheader line).") from None
    columns = lines[start].split("\t")
    rows = [line.split("\t") for line in lines[start + 1:] if line.strip()]
    table = np.array(rows, dtype=np.float64).reshape(len(rows), len(columns))
    return table[:, 0], {c.strip(): table[:, i] for i, c in enumerate(columns) if i}


def inverse_kinematics(
    trc: Path,
    markers: str,
    outdir: Path,
    config: KinematicsConfig | None = None,
    person: int = 0,
) -> KinematicsResult:
    """Scale the model to the take in `trc` and run IK; `markers` names the Pose2Sim marker set
    the TRC's names follow (`marker_set(skeleton)` for ours; e.g. body25b for Pose2Sim's own
    OpenPose takes). Writes <stem>.osim, <stem>.mot, <stem>_ik_marker_errors.sto,
    <stem>_angles.png and the IK setup into outdir."""
    from app.process.plots import line_chart, save

    config = config or KinematicsConfig()
    check_available()
    trc = Path(trc)
    folder = setup_dir()
    outdir.mkdir(parents=True, exist_ok=True)
    data = read_trc(trc)
    weights = ik_weights(_setup_file(folder, "ik_setup_pose2sim_", markers))
    weighted = [n for n, w in weights.items() if w >= 1.0]
    if not set(weighted) & set(data.names):
        raise TriangulumError(
            f"{trc} has none of the markers OpenSim's IK setup follows ({', '.join(weighted[:6])}...); "
            "write it with OpenSim marker names (process --trc-names opensim)."
        )
    cols = [data.names.index(n) for n in weighted if n in data.names]
    seen = np.isfinite(data.points[:, cols]).all(-1).sum(1)  # (F,) weighted markers present
    good = seen >= config.min_markers
    if not good.any():
        raise TriangulumError(
            f"{trc}: no frame has {config.min_markers} of the {len(cols)} main markers; nobody to compute "
            "joint angles for in this frame range."
        )
    stem = trc.stem
    log_path = outdir / f"{stem}_opensim.log"
    log_path.unlink(missing_ok=True)
    with _opensim_log(log_path):
        model_path, motion, errors, setup, scales = _run_opensim(folder, markers, config, trc, data, good, outdir)
    t, angles = read_motion(motion)
    _, err = read_motion(errors)
    series = {f"{a} {s.upper()}": angles[f"{a}_{s}"] for a in MAIN_ANGLES for s in ("r", "l") if f"{a}_{s}" in angles}
    plot = save(line_chart(t, series, f"Joint angles, person {person} (OpenSim IK)", "time (s)", "degrees"),
                outdir / f"{stem}_angles.png")
    return KinematicsResult(
        person=person, model=model_path, motion=motion, marker_errors=errors, plot=plot, times=t,
        angles=angles, marker_rms=err["marker_error_RMS"], marker_max=err["marker_error_max"],
        scales=scales, frames_skipped=int((~good).sum()), setup_files=[setup, log_path],
    )


def _run_opensim(folder: Path, markers: str, config: KinematicsConfig, trc: Path, data, good: np.ndarray,
                 outdir: Path) -> tuple[Path, Path, Path, Path, dict[str, float]]:
    """Scaling then IK -> (scaled model, motion, marker errors, IK setup, body scales)."""
    import opensim

    stem = trc.stem
    model_path = outdir / f"{stem}.osim"
    scales = _scale_model(folder, markers, config, data.points[good], data.names, model_path)

    ik_trc = trc
    if not good.all():  # IK on the frames with enough markers; times are kept
        ik_trc = outdir / f"{stem}_ik_markers.trc"
        _write_subset(trc, ik_trc, good)
    motion = outdir / f"{stem}.mot"
    tool = opensim.InverseKinematicsTool(str(_setup_file(folder, "ik_setup_pose2sim_", markers)))
    tool.setName(stem)
    tool.set_model_file(str(model_path.resolve()))
    tool.setMarkerDataFileName(str(ik_trc.resolve()))
    tool.setOutputMotionFileName(str(motion.resolve()))
    tool.setResultsDir(str(outdir.resolve()))
    tool.set_report_errors(True)
    times = data.times[good]
    tool.setStartTime(float(times[0]))
    tool.setEndTime(float(times[-1]))
    setup = outdir / f"{stem}_ik_setup.xml"
    tool.printToXML(str(setup))
    if not tool.run():
        raise TriangulumError(f"OpenSim inverse kinematics failed on {trc}; see {stem}_opensim.log.")
    return model_path, motion, outdir / f"{stem}_ik_marker_errors.sto", setup, scales


def _write_subset(src: Path, dst: Path, keep: np.ndarray) -> None:
    """Copy TRC `src` to `dst` with only the frames where keep (F,) is true."""
    lines = src.read_text(encoding="utf-8").splitlines()
    rows = [line for line, k in zip(lines[5:], keep, strict=True) if k]
    values = lines[2].split("\t")
    values[2] = values[7] = str(len(rows))  # NumFrames, OrigNumFrames
    dst.write_text("\n".join([lines[0], lines[1], "\t".join(values), *lines[3:5], *rows]) + "\n", encoding="utf-8")


def take_kinematics(joints: np.ndarray, skeleton: Skeleton, fps: float, outdir: Path, stem: str,
                    config: KinematicsConfig | None = None, person: int = 0) -> KinematicsResult:
    """Kinematics of one person's take (F, J, 3) world metres: outdir/<stem>.trc with OpenSim
    marker names (whatever names the take's own TRC has) and its IK outputs."""
    outdir.mkdir(parents=True, exist_ok=True)
    trc = write_trc(outdir / f"{stem}.trc", joints, skeleton, fps)
    result = inverse_kinematics(trc, marker_set(skeleton), outdir, config, person)
    result.setup_files.insert(0, trc)
    return result


def run_people(result: TakeResult, outdir: Path, config: KinematicsConfig) -> dict[int, KinematicsResult]:
    """Kinematics for every reconstructed person of a processed take, in outdir."""
    return {p.person_id: take_kinematics(p.final.joints, result.skeleton, result.take.fps, outdir,
                                         f"person{p.person_id}", config, p.person_id)
            for p in result.people}
