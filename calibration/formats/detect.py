"""Which calibration format a file is, from its content, and conversion to a Rig.

    convert(source, fmt=None, size=None, units="auto", notes=None) -> Rig   read any supported format
    export(rig, dest, fmt=None) -> [paths]           write ours (TOML) or EasyMocap

Formats: "toml" (ours, Anipose, FreeMoCap, Pose2Sim), "qualisys" (`.qca.txt`),
"caliscope" (`camera_array.toml`), "easymocap" (`intri.yml` + `extri.yml`).
Detection reads the content, not the name: XML with a <calibration> root is
Qualisys; OpenCV YAML is EasyMocap; TOML with [cameras.N] tables is caliscope;
TOML with camera tables holding a `matrix` is ours.
"""

from __future__ import annotations

import logging
import tomllib
from pathlib import Path

from calibration.errors import TriangulumError
from calibration.formats import caliscope, easymocap, qualisys
from calibration.rig import Rig
from calibration.rig_io import rig_from_toml_dict, save_rig
from calibration.units import to_metres

log = logging.getLogger(__name__)

FORMATS = ("toml", "qualisys", "caliscope", "easymocap")
ALIASES = {
    "ours": "toml", "triangulum": "toml", "pose2sim": "toml", "anipose": "toml", "freemocap": "toml",
    "qca": "qualisys", "opencv": "easymocap", "yaml": "easymocap", "yml": "easymocap",
}
WRITABLE = ("toml", "easymocap")
_SNIFF_BYTES = 4096


def format_name(fmt: str) -> str:
    """Canonical format name for a user-given one (case and aliases tolerated)."""
    key = fmt.strip().lower()
    key = ALIASES.get(key, key)
    if key not in FORMATS:
        raise TriangulumError(f"unknown calibration format '{fmt}'; choose one of {', '.join(FORMATS)}.")
    return key


def detect_format(path: str | Path) -> str:
    """The format of a calibration file or folder, judged from its content."""
    path = Path(path)
    if path.is_dir():
        if (path / easymocap.INTRI).is_file() and (path / easymocap.EXTRI).is_file():
            return "easymocap"
        raise TriangulumError(f"{path}: a folder, but it holds no {easymocap.INTRI} and {easymocap.EXTRI}; "
                              "give the calibration file itself.")
    try:
        with path.open("rb") as f:
            head = f.read(_SNIFF_BYTES)
    except FileNotFoundError:
        raise TriangulumError(f"calibration file {path} does not exist.") from None
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")
    if not text:
        raise TriangulumError(f"{path}: the file is empty.")
    if text.startswith("<"):
        return "qualisys"  # the reader says clearly if the XML is something else
    if text.startswith("%YAML") or "!!opencv-matrix" in text:
        return "easymocap"
    data = _parse_toml(path)
    if caliscope.is_caliscope(data):
        return "caliscope"
    if any(isinstance(v, dict) and "matrix" in v for v in data.values()):
        return "toml"
    raise TriangulumError(f"{path}: a TOML file, but with no camera tables (no [cameras.N] and no table with a "
                          "'matrix'); is it a calibration?")


def _parse_toml(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise TriangulumError(f"{path}: not a text file; calibration files are TOML, XML or YAML.") from None
    except tomllib.TOMLDecodeError as exc:
        raise TriangulumError(f"{path}: not a recognised calibration (not XML or OpenCV YAML, and not valid TOML: "
                              f"{exc}); the file is truncated or damaged, or pass --from FORMAT.") from None


def convert(source: str | Path, fmt: str | None = None, size: tuple[int, int] | None = None,
            units: str = "auto", notes: list[str] | None = None) -> Rig:
    """Read a calibration in any supported format, in metres.

    fmt: forces the format (see FORMATS/ALIASES) instead of detecting it.
    size: (W, H) px for EasyMocap files, which may not store the image size.
    units: the file's length unit, "m", "cm", "mm", or "auto" to tell it from the rig's
    geometry (`calibration.units`). notes: receives a sentence when the rig was converted
    (without `notes` it is logged).
    """
    rig = _read(Path(source), fmt, size)
    rig, note = to_metres(rig, units, str(source))
    if note and notes is not None:
        notes.append(note)
    elif note:
        log.warning(note)
    return rig


def _read(source: Path, fmt: str | None, size: tuple[int, int] | None) -> Rig:
    key = format_name(fmt) if fmt else detect_format(source)
    if size is not None and key != "easymocap":
        raise TriangulumError(f"{source}: a {key} calibration stores the image size itself; leave out the size.")
    if key == "qualisys":
        return qualisys.read_qualisys(source)
    if key == "caliscope":
        return caliscope.read_caliscope(source)
    if key == "easymocap":
        return easymocap.read_easymocap(source, size)
    if source.is_dir():
        raise TriangulumError(f"{source}: a folder; give the rig TOML file itself.")
    return rig_from_toml_dict(_parse_toml(source), str(source))


def export_format(dest: str | Path, fmt: str | None = None) -> str:
    """The format to write at `dest`: `fmt`, else from its suffix (.toml, .yml/.yaml)."""
    if fmt:
        key = format_name(fmt)
        if key not in WRITABLE:
            raise TriangulumError(f"cannot write {key} files; write one of {', '.join(WRITABLE)}.")
        return key
    suffix = Path(dest).suffix.lower()
    if suffix == ".toml":
        return "toml"
    if suffix in (".yml", ".yaml"):
        return "easymocap"
    raise TriangulumError(f"{dest}: cannot tell the output format from the name; end it in .toml, "
                          "name an EasyMocap intri.yml, or choose the format explicitly.")


def export(rig: Rig, dest: str | Path, fmt: str | None = None) -> list[Path]:
    """Write the rig at `dest` -> the files written.

    toml: `dest` is the file. easymocap: `dest` is a folder, or an `intri.yml` /
    `extri.yml` path whose folder receives both files.
    """
    dest = Path(dest)
    key = export_format(dest, fmt)
    if key == "toml":
        return [save_rig(rig, dest)]
    if dest.suffix.lower() in (".yml", ".yaml"):
        if dest.stem not in ("intri", "extri"):
            raise TriangulumError(f"{dest}: EasyMocap files must be named {easymocap.INTRI} and {easymocap.EXTRI}; "
                                  "give one of those names or a folder.")
        dest = dest.parent
    return list(easymocap.write_easymocap(rig, dest))
