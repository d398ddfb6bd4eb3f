"""Calibration units told from the rig's geometry, stated units, and every reader converting to
metres (calibration.units through calibration.formats.detect.convert)."""

import tomllib

import numpy as np
import pytest
import tomli_w

from app.cli import main
from app.sample import sample_calibration
from calibration.errors import TriangulumError
from calibration.formats.detect import convert
from calibration.rig import Rig
from calibration.units import detect_units, scaled, scene_distance, to_metres


def _rig() -> Rig:
    return convert(sample_calibration())


def write_in_units(path, factor: float):
    """The sample calibration as a TOML with translations x factor (as FreeMoCap/Anipose write mm)."""
    data = tomllib.loads(sample_calibration().read_text())
    for table in data.values():
        if isinstance(table, dict) and "translation" in table:
            table["translation"] = [x * factor for x in table["translation"]]
    path.write_text(tomli_w.dumps(data))
    return path


def test_the_studio_rig_is_metres_and_its_scaled_copies_are_not():
    rig = _rig()
    assert scene_distance(rig) == pytest.approx(3.47, abs=0.05)
    assert detect_units(rig) == "m"
    assert detect_units(scaled(rig, 100.0)) == "cm"
    assert detect_units(scaled(rig, 1000.0)) == "mm"
    assert detect_units(Rig(rig.cameras[:1])) == "m"  # one camera: no scale to judge


def test_a_small_millimetre_rig_and_a_large_metre_rig():
    rig = _rig()
    assert detect_units(scaled(rig, 0.25 * 1000)) == "mm"  # webcams 0.9 m from the scene, in mm
    assert detect_units(scaled(rig, 10.0)) == "m"  # cameras 35 m away (a sports field) stay metres


def test_stated_units_win_and_unknown_units_are_refused():
    rig = scaled(_rig(), 100.0)
    metres, note = to_metres(rig, "cm", "rig.toml")
    np.testing.assert_allclose(metres.cameras[0].t, _rig().cameras[0].t)
    assert "stated as cm" in note
    same, note = to_metres(rig, "m")
    assert note is None and same is rig
    with pytest.raises(TriangulumError, match="unknown; choose one of auto, m, cm, mm"):
        to_metres(rig, "inches")


def test_convert_reads_millimetre_and_centimetre_tomls_in_metres(tmp_path):
    reference = _rig()
    for factor, word in ((1000.0, "millimetres"), (100.0, "centimetres")):
        notes: list[str] = []
        rig = convert(write_in_units(tmp_path / f"rig{factor:g}.toml", factor), notes=notes)
        for a, b in zip(rig.cameras, reference.cameras, strict=True):
            np.testing.assert_allclose(a.t, b.t, atol=1e-12)
            np.testing.assert_array_equal(a.K, b.K)
        assert len(notes) == 1 and word in notes[0] and "--calib-units" in notes[0]
    notes = []
    convert(sample_calibration(), notes=notes)
    assert notes == []


def test_a_caliscope_file_in_millimetres_is_converted(tmp_path):
    src = tmp_path / "camera_array.toml"
    from calibration.formats import caliscope

    # caliscope writes metres; rewrite its reference array from our reader's rig in mm.
    rig = scaled(_rig(), 1000.0)
    data = {"cameras": {}}
    for k, cam in enumerate(rig.cameras):
        data["cameras"][str(k)] = {"port": k, "size": list(cam.size), "matrix": cam.K.tolist(),
                                   "distortions": cam.dist.tolist(), "rotation": cam.R.tolist(),
                                   "translation": cam.t.tolist(), "error": 0.5}
    src.write_text(tomli_w.dumps(data))
    assert caliscope.is_caliscope(tomllib.loads(src.read_text()))
    back = convert(src)
    np.testing.assert_allclose(back.cameras[0].t, _rig().cameras[0].t, atol=1e-9)


def test_calib_convert_writes_metres_and_says_so(tmp_path, capsys):
    mm = write_in_units(tmp_path / "mm.toml", 1000.0)
    assert main(["calib", "convert", str(mm), "-o", str(tmp_path / "m.toml")]) == 0
    assert "fits millimetres; converted to metres" in capsys.readouterr().out
    np.testing.assert_allclose(convert(tmp_path / "m.toml").cameras[2].t, _rig().cameras[2].t)
    assert main(["calib", "convert", str(mm), "-o", str(tmp_path / "raw.toml"), "--calib-units", "m"]) == 0
    np.testing.assert_allclose(convert(tmp_path / "raw.toml", units="m").cameras[2].t, _rig().cameras[2].t * 1000)
