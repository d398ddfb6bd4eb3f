"""The per-frame pipeline that live capture runs is the one offline processing runs: on the
sample's first frames, FramePipeline.process gives PoseFrames whose 2D equal the offline
run's and whose 3D equal its unfiltered triangulation (no swaps happen in these frames)."""

import numpy as np
import pytest
from test_process_support import sample_result

from app.capture.frames import PoseFrame
from app.process.pipeline import FramePipeline, PipelineConfig
from app.process.reader import frame_sets
from app.process.take import ProcessConfig, make_pipeline
from engines.skeleton import BLAZEPOSE33, LIMB_JOINTS, indices
from engines.temporal import OneEuroConfig

pytestmark = pytest.mark.slow
FRAMES = 8


def test_live_frames_equal_offline_frames():
    result = sample_result()
    person = result.person(result.main)
    pipeline = make_pipeline(result.take, ProcessConfig())
    limbs = indices(BLAZEPOSE33, LIMB_JOINTS)
    for k, fs in enumerate(frame_sets(result.take, 0, FRAMES)):
        pose = pipeline.process(fs)
        assert isinstance(pose, PoseFrame)
        assert pose.cameras == tuple(result.take.cameras) and pose.joint_names == BLAZEPOSE33.joints
        assert set(pose.timings) >= {"pose2d", "associate", "handedness", "triangulate"}
        np.testing.assert_array_equal(pose.keypoints2d, person.keypoints[:, k])
        np.testing.assert_allclose(pose.joints3d, person.raw.joints[k], atol=1e-9)
        assert np.isfinite(pose.joints3d[limbs]).all()
        np.testing.assert_allclose(pose.reprojections, result.take.rig.project(pose.joints3d))
    assert pipeline.main is not None


def test_live_smoothing_is_optional_and_starts_from_the_raw_pose():
    result = sample_result()
    from engines.blazepose.pipeline import BlazePoseEstimator

    pipeline = FramePipeline(result.take.rig, BlazePoseEstimator("onnxruntime", threads=1),
                             PipelineConfig(one_euro=OneEuroConfig()))
    poses = [pipeline.process(fs) for fs in frame_sets(result.take, 0, 4)]
    raw = result.person(result.main).raw.joints
    np.testing.assert_allclose(poses[0].joints3d, raw[0], atol=1e-9)  # the filter starts at the first pose
    assert not np.allclose(poses[3].joints3d, raw[3], atol=1e-6)
    assert "filter" in poses[3].timings
