"""Calibration file formats: ours (TOML), Qualisys, caliscope, EasyMocap/OpenCV YAML.

`convert` reads any of them into a `Rig`; `export` writes ours or EasyMocap's.
"""

from calibration.formats.detect import FORMATS, WRITABLE, convert, detect_format, export

__all__ = ["FORMATS", "WRITABLE", "convert", "detect_format", "export"]
