"""`triangulum batch` on a folder of copies of the sample (one in Pose2Sim's session/participant/
trial layout, one deliberately broken): the good takes are processed in parallel, the broken
one is reported, finished takes are skipped the second time; the same on a local Ray instance."""

import csv
import importlib.util
import shutil

import pytest

from app.batch import find_takes
from app.cli import main
from app.sample import SAMPLE_DIR

pytestmark = pytest.mark.slow


@pytest.fixture()
def root(tmp_path):
    r = tmp_path / "takes"
    for name in ("monday", "tuesday"):
        (r / name).mkdir(parents=True)
        for f in list(SAMPLE_DIR.glob("*.mp4")) + [SAMPLE_DIR / "calibration.toml"]:
            shutil.copy(f, r / name)
    trial = r / "S00" / "P00" / "T00_balance" / "videos"
    trial.mkdir(parents=True)
    (r / "S00" / "calibration").mkdir()
    shutil.copy(SAMPLE_DIR / "calibration.toml", r / "S00" / "calibration")
    for f in SAMPLE_DIR.glob("*.mp4"):
        shutil.copy(f, trial)
    broken = r / "broken"
    broken.mkdir()
    shutil.copy(SAMPLE_DIR / "calibration.toml", broken)
    for f in list(SAMPLE_DIR.glob("*.mp4"))[:2]:
        (broken / f.name).write_bytes(f.read_bytes()[:5000])  # cut off: not a readable video
    config = tmp_path / "batch.toml"
    config.write_text('[process]\nframes = "0:10"\nno_overlays = true\nformats = "trc,csv"\n')
    return r, config


def _summary(path):
    with path.open() as f:
        return {row["take"]: row for row in csv.DictReader(f)}


def test_batch_processes_the_good_takes_and_reports_the_broken_one(root, capsys):
    r, config = root
    assert [t.name for t in find_takes(r)] == ["S00/P00/T00_balance", "broken", "monday", "tuesday"]
    assert main(["batch", str(r), "--config", str(config), "--jobs", "2"]) == 3
    out = capsys.readouterr().out
    assert "3 of 4 takes processed; 1 need attention." in out
    rows = _summary(r / "batch-results" / "batch_summary.csv")
    assert {k: v["status"] for k, v in rows.items()} == {
        "S00/P00/T00_balance": "ok", "broken": "failed", "monday": "ok", "tuesday": "ok"}
    assert "cannot be opened" in rows["broken"]["error"]
    assert rows["monday"]["frames"] == "10" and rows["monday"]["people"] == "1"
    assert (r / "batch-results" / "S00" / "P00" / "T00_balance" / "person0.trc").is_file()
    # again: finished takes are skipped, the broken one is tried again
    assert main(["batch", str(r), "--config", str(config), "--jobs", "2"]) == 3
    rows = _summary(r / "batch-results" / "batch_summary.csv")
    assert rows["monday"]["status"] == "skipped (done before)" and rows["broken"]["status"] == "failed"


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="Ray not installed (pip install ray)")
def test_batch_on_a_local_ray_instance(root):
    r, config = root
    shutil.rmtree(r / "broken")
    assert main(["batch", str(r), "--config", str(config), "--ray", "local", "-o", str(r / "ray-out")]) == 0
    rows = _summary(r / "ray-out" / "batch_summary.csv")
    assert [v["status"] for v in rows.values()] == ["ok", "ok", "ok"]


def test_batch_configuration_errors(root, tmp_path):
    r, _ = root
    bad = tmp_path / "bad.toml"
    bad.write_text('[process]\nmethd = "robust"\n')
    assert main(["batch", str(r), "--config", str(bad)]) == 2
    assert main(["batch", str(tmp_path / "nothing")]) == 2
