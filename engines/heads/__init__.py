"""Heads: how one person's 2D in every view becomes 3D. The one list of triangulation methods
that `triangulum process`, `triangulum capture`, the GUI and the benchmarks offer.

    learned    Learnable Triangulation's algebraic head: per-view confidences from a trained
               network (algebraic.py, weights in weights/ with their NOTICE), weighted DLT
    volumetric Learnable Triangulation's volumetric head: every view's heatmaps unprojected
               into a voxel cube round the person, V2V, 3D soft-argmax (volumetric.py,
               weights in weights/volumetric/ with their NOTICE)
    algebraic  DLT with each view weighted by the backbone's heatmap-peak confidence
    robust     the self-supervision paper's GeoMed/WSS weights on top of the confidences
    ransac     Learnable Triangulation's RANSAC baseline (pair hypotheses, inliers, Huber)
    dlt        plain DLT: every view that saw the joint, equal weights

The geometry of the classical methods is `calibration.triangulation` (one implementation).
"""

from __future__ import annotations

METHODS: dict[str, str] = {
    "learned": "Learned (trained per-view confidences)",
    "volumetric": "Volumetric (trained voxel head)",
    "algebraic": "Algebraic (confidence-weighted DLT)",
    "robust": "Robust (GeoMed / WSS)",
    "ransac": "RANSAC",
    "dlt": "Plain DLT (equal weights)",
}
LEARNED = ("learned", "volumetric")  # methods with trained weights (--weights)
DEFAULT_METHOD = "algebraic"
