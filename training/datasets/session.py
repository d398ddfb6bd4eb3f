"""Our own takes as a supervised dataset: a recorded session (or a folder of videos named after
their cameras) and the 3D of its frames from a `poses3d.npz`.

    ds = SessionDataset(Path("takes/take1"), "train")                 # takes/take1/results/poses3d.npz
    ds = SessionDataset(Path("videos"), "val", calib=Path("rig.toml"), targets=Path("out/poses3d.npz"))

The 3D is what the npz holds for its main performer: `triangulum process`'s own result (pseudo
ground truth: training on it teaches the backbone what the multi-view geometry agreed on, as
`triangulum adapt` does), or a better reconstruction written in the same layout. Each npz row
names every camera's frame number (`frame_index`), so the frames are read by those, through
the one take reader (calibration.takes); the calibration is the session's own, the folder's
calibration.toml, or `calib`. Rows without both hips are left out. Split by time range: the
first `1 - val_share` of the rows trains, the rest validates. Frames are decoded once, in
order, and only the crops are kept (about 200 kB a view).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from calibration.errors import TriangulumError
from calibration.formats.detect import convert
from calibration.rig import fit_source_size
from calibration.takes import Track, TrackReader, open_session, video_track
from training.datasets import OURS, frame_sample

HIPS = (OURS.index("left_hip"), OURS.index("right_hip"))


def _tracks(path: Path, calib: Path | None, names: list[str]) -> tuple[list[Track], Path]:
    """The take's track per camera name, and its calibration file."""
    if (path / "manifest.toml").is_file():
        session = open_session(path)
        calib = calib or session.calibration
        tracks = [session.track(n) for n in names]
    else:
        calib = calib or path / "calibration.toml"
        tracks = []
        for n in names:
            videos = sorted(path.glob(f"{n}.*"))
            if not videos:
                raise TriangulumError(f"{path}: no video named after camera '{n}' (e.g. {n}.mp4).")
            tracks.append(video_track(n, videos[0]))
    if calib is None or not Path(calib).is_file():
        raise TriangulumError(f"{path}: no calibration ({calib or 'none in the session'}); give calib=RIG.")
    return tracks, Path(calib)


class SessionDataset:
    def __init__(self, path: Path, split: str = "train", calib: Path | None = None, targets: Path | None = None,
                 val_share: float = 0.3, every: int = 1):
        path = Path(path)
        if not path.is_dir():
            raise TriangulumError(f"{path}: not a folder; give a recorded session or a folder of videos.")
        targets = Path(targets) if targets else path / "results" / "poses3d.npz"
        if not targets.is_file():
            raise TriangulumError(f"{targets}: no 3D for this take; run `triangulum process {path} -o "
                                  f"{path / 'results'}` first, or give targets=PATH of a poses3d.npz.")
        data = np.load(targets)
        if [str(n) for n in data["joint_names"]][:33] != list(OURS):
            raise TriangulumError(f"{targets}: its joints are not BlazePose-33's; a session dataset trains our skeleton.")
        main = int(data["main_person"])
        if main < 0:
            raise TriangulumError(f"{targets}: nobody was reconstructed in this take.")
        self.cameras = [str(c) for c in data["cameras"]]
        joints, index = data[f"person{main}_joints"][:, :33], data["frame_index"]
        tracks, calib = _tracks(path, calib, self.cameras)
        warnings: list[str] = []
        rig = convert(calib, notes=warnings).subset(self.cameras)
        for t in tracks:
            rig = fit_source_size(rig, t.name, (t.width, t.height), f"the video {t.video.name}", warnings)
        cams = [rig[c] for c in self.cameras]
        rows = np.flatnonzero(np.isfinite(joints[:, list(HIPS)]).all((1, 2)))
        cut = int(round(len(rows) * (1 - val_share)))
        chosen = (rows[:cut] if split == "train" else rows[cut:])[::every]
        readers = [TrackReader(t) for t in tracks]
        self.samples = []
        try:
            for k in chosen:  # increasing frame numbers: each reader decodes forward
                images = [cv2.cvtColor(r.read(int(i)), cv2.COLOR_BGR2RGB) if i >= 0 else None
                          for r, i in zip(readers, index[k], strict=True)]
                s = frame_sample(images, cams, joints[k], joints[k])
                if s["view_ok"].sum() >= 2:
                    self.samples.append(s)
        finally:
            for r in readers:
                r.close()

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        return self.samples[i]

    def joints(self, i: int) -> np.ndarray:
        return self.samples[i]["joints"]
