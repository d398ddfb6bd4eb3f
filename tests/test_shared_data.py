"""The copy of the real recordings inside the repository (tests/data/real) is what the tests
read in a fresh clone: it must hold the same data as ../shared/data, within the re-encoding."""

import cv2
import numpy as np
import pytest
from shared_data import IN_REPO, SHARED

needs_shared = pytest.mark.skipif(not (SHARED / "pose2sim-demo-single").is_dir(),
                                  reason="shared data not present: nothing to compare the copy with")
IDENTICAL = [
    "pose2sim-demo-single/LICENSE",
    "pose2sim-demo-single/calibration/Calib.qca.txt",
    "pose2sim-demo-single/reference/pose2sim_body25b_0-100.trc",
    "pose2sim-demo-single/videos/cam01.mp4",
    "pose2sim-demo-single/videos/cam04.mp4",
    "caliscope-charuco-4cam/LICENSE",
    "caliscope-charuco-4cam/charuco.toml",
    "caliscope-charuco-4cam/reference_camera_array.toml",
    "caliscope-charuco-4cam/extrinsic/timestamps.csv",
]


def test_the_copy_has_every_file_with_its_licence():
    for rel in IDENTICAL:
        assert (IN_REPO / rel).is_file(), rel
    photos = sorted((IN_REPO / "pose2sim-demo-single" / "calibration" / "intrinsics").glob("int_cam0*_img/*.jpg"))
    assert len(photos) == 28
    assert len(list((IN_REPO / "caliscope-charuco-4cam" / "extrinsic").glob("cam_*.mp4"))) == 4


@needs_shared
def test_the_copy_matches_the_shared_data():
    for rel in IDENTICAL:
        assert (IN_REPO / rel).read_bytes() == (SHARED / rel).read_bytes(), rel
    for photo in sorted((SHARED / "pose2sim-demo-single" / "calibration" / "intrinsics").glob("*/*.jpg")):
        copy = cv2.imread(str(IN_REPO / photo.relative_to(SHARED)))
        original = cv2.imread(str(photo))
        assert copy.shape == original.shape and np.abs(copy.astype(int) - original).mean() < 3, photo.name
    for k in range(4):
        rel = f"caliscope-charuco-4cam/extrinsic/cam_{k}.mp4"
        a, b = cv2.VideoCapture(str(SHARED / rel)), cv2.VideoCapture(str(IN_REPO / rel))
        assert a.get(cv2.CAP_PROP_FRAME_COUNT) == b.get(cv2.CAP_PROP_FRAME_COUNT) == 57
        assert a.get(cv2.CAP_PROP_FPS) == b.get(cv2.CAP_PROP_FPS)
        for _ in range(5):
            (_, fa), (_, fb) = a.read(), b.read()
            assert fa.shape == fb.shape and np.abs(fa.astype(int) - fb).mean() < 4
