"""Heads: how one person's 2D in every view becomes 3D. The one list of triangulation methods
that `triangulum process`, `triangulum capture`, the GUI and the benchmarks offer.

    learned    Learnable Triangulation's algebraic head: per-view confidences from a trained
               network (algebraic.py, weights in weights/ with their NOTICE), weighted DLT
    algebraic  DLT with each view weighted by the backbone's heatmap-peak confidence
    robust     the self-supervision paper's GeoMed/WSS weights on top of the confidences
    ransac     Learnable Triangulation's RANSAC baseline (pair hypotheses, inliers, Huber)
    dlt        plain DLT: every view that saw the joint, equal weights

The geometry of the classical methods is `calibration.triangulation` (one implementation);
the volumetric head (issue 12) is not built yet and is not listed.
"""

from __future__ import annotations

METHODS: dict[str, str] = {
    "learned": "Learned (trained per-view confidences)",
    "algebraic": "Algebraic (confidence-weighted DLT)",
    "robust": "Robust (GeoMed / WSS)",
    "ransac": "RANSAC",
    "dlt": "Plain DLT (equal weights)",
}
LEARNED = ("learned",)
DEFAULT_METHOD = "algebraic"
