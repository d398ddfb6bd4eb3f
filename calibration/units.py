"""The length unit of a calibration, told from its own geometry, and conversion to metres.

    rig, note = to_metres(rig, "auto", "rig.toml")    # note: None, or a sentence saying what was done

FreeMoCap and Anipose write their TOMLs in the calibration board's unit, usually millimetres
(our layout, translations x 1000); some tools use centimetres. Every reader hands its rig to
`to_metres`, so a file in any unit gives the same metres rig.

How the unit is told: what a rig's translations measure is the distance from its cameras to
what they film. Cameras that look at a person are 0.5 to a few tens of metres from them, so
the typical camera-to-scene distance (the median distance of the camera centres to the point
nearest all optical axes; for cameras whose axes do not meet, the widest baseline) fixes the
unit: up to `METRES_UP_TO` it is metres, up to `CENTIMETRES_UP_TO` centimetres (0.6 to 4 m),
beyond that millimetres (from 0.4 m on). Millimetres win the overlap because the tools that
write other units mostly write millimetres; a centimetre rig with cameras more than 4 m away
needs `--calib-units cm`. A rig with one camera, or cameras at one
point, has no scale to judge and is taken as metres. `units` states the unit instead.
"""

from __future__ import annotations

import numpy as np

from calibration.errors import TriangulumError
from calibration.rig import Rig
from calibration.world_frame import transform_rig

UNITS = {"m": 1.0, "cm": 0.01, "mm": 0.001}
CHOICES = ("auto", *UNITS)
METRES_UP_TO = 60.0  # camera-to-scene distances beyond this many file units are not metres
CENTIMETRES_UP_TO = 400.0  # ... and beyond this many not centimetres


def axes_meeting_point(rig: Rig) -> np.ndarray | None:
    """(3,) the point nearest all optical axes, in front of most cameras (None if the axes are
    parallel or the point lies behind): where the cameras look, in the rig's own unit."""
    centres = np.stack([-c.R.T @ c.t for c in rig.cameras])
    axes = np.stack([c.R.T @ np.array([0.0, 0.0, 1.0]) for c in rig.cameras])
    proj = np.eye(3)[None] - axes[:, :, None] * axes[:, None, :]  # (C, 3, 3) off-axis projectors
    A, b = proj.sum(0), np.einsum("cij,cj->i", proj, centres)
    if len(rig) < 2 or np.linalg.cond(A) >= 1e6:
        return None
    p = np.linalg.solve(A, b)
    ahead = np.einsum("ci,ci->c", axes, p - centres) > 0
    return p if ahead.mean() > 0.5 else None


def scene_distance(rig: Rig) -> float | None:
    """Typical camera-to-scene distance in the rig's own unit (None: no scale to judge)."""
    if len(rig) < 2:
        return None
    centres = np.stack([-c.R.T @ c.t for c in rig.cameras])
    baseline = float(max(np.linalg.norm(a - b) for a in centres for b in centres))
    if not baseline > 0 or not np.isfinite(baseline):
        return None
    p = axes_meeting_point(rig)
    if p is not None:
        return float(np.median(np.linalg.norm(p - centres, axis=1)))
    return baseline


def detect_units(rig: Rig) -> str:
    """'m', 'cm' or 'mm': the unit the rig's translations are in (module docstring)."""
    d = scene_distance(rig)
    if d is None or d <= METRES_UP_TO:
        return "m"
    return "cm" if d <= CENTIMETRES_UP_TO else "mm"


def scaled(rig: Rig, factor: float) -> Rig:
    """The rig with every length multiplied by `factor` (intrinsics do not change)."""
    return transform_rig(rig, factor, np.eye(3), np.zeros(3))


def to_metres(rig: Rig, units: str = "auto", source: str = "the calibration") -> tuple[Rig, str | None]:
    """The rig in metres -> (rig, note). units: 'auto' (told from the geometry), 'm', 'cm', 'mm'.
    The note says what was converted and how to state the unit; None when nothing changed."""
    if units not in CHOICES:
        raise TriangulumError(f"calibration units '{units}' are unknown; choose one of {', '.join(CHOICES)}.")
    unit = detect_units(rig) if units == "auto" else units
    if unit == "m":
        return rig, None
    d = scene_distance(rig)
    how = (f"its cameras are {d:,.0f} units from the scene, which fits {dict(cm='centimetres', mm='millimetres')[unit]}"
           if units == "auto" and d is not None else f"stated as {unit}")
    note = (f"{source}: {how}; converted to metres (x {UNITS[unit]:g}). If that is wrong, state the unit with "
            "--calib-units m|cm|mm.")
    return scaled(rig, UNITS[unit]), note
