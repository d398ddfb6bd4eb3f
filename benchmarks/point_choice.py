"""Which 2D point to triangulate: BlazePose's regressed landmark or the windowed soft-argmax
of its heatmap (what the pipeline uses). Studio take, frames 70-99 (the learned head's
held-out range), one tracked subject per view, confidence-weighted DLT of each.

    python benchmarks/point_choice.py

Reprojection is against each variant's own 2D; the agreement with Pose2Sim's reconstruction
is the independent measure."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import cv2
import numpy as np

from benchmarks.process_quality import load_reference, quality
from calibration.formats.detect import convert
from engines.blazepose.pipeline import BlazePoseEstimator

D = str(Path(__file__).resolve().parents[2] / "shared" / "data" / "pose2sim-demo-single")
rig = convert(D + "/calibration/Calib.qca.txt")
caps = [cv2.VideoCapture(f"{D}/videos/cam0{i}.mp4") for i in range(1, 5)]
est = BlazePoseEstimator("onnxruntime")
kp, rg, cf = [], [], []
for f in range(100):
    imgs = [cv2.cvtColor(c.read()[1], cv2.COLOR_BGR2RGB) for c in caps]
    poses = est(imgs, t=f / 60)
    if f < 70:
        continue
    kp.append([p.keypoints[:33] if p else np.full((33, 2), np.nan) for p in poses])
    rg.append([p.regressed[:33] if p else np.full((33, 2), np.nan) for p in poses])
    cf.append([p.confidence[:33] if p else np.zeros(33) for p in poses])
kp, rg, cf = (np.array(a).transpose(1, 0, 2, 3) if a[0][0].ndim == 2 else np.array(a).transpose(1, 0, 2) for a in (kp, rg, cf))
ref = load_reference(100)[70:]
for name, pts in (("soft-argmax", kp), ("regressed", rg)):
    w = np.where(cf >= 0.3, cf, 0)
    p = np.where((w > 0)[..., None], pts, np.nan)
    X = rig.triangulate(p, w)
    q = quality(rig, X, pts, w > 0, 60.0, ref)
    print(f"{name:12s} reproj median {q['reprojection_px']['median']:.1f} p95 {q['reprojection_px']['p95']:.1f} px, bone CV {q['bone_cv']:.3f}, vs Pose2Sim {q['reference_m']['median']*100:.1f}/{q['reference_m']['p90']*100:.1f} cm")
