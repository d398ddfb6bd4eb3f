"""The one exception type a user can cause, and the TOML reading every file format shares."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any


class TriangulumError(Exception):
    """An error the user can fix: bad file, missing camera, wrong resolution, no person.

    The message is a full sentence that names the thing (file, camera, field) and says
    what to do. The CLI prints it without a traceback; the GUI shows it in the window.
    """


def read_toml(path: str | Path, what: str, advice: str) -> dict[str, Any]:
    """Parse a TOML file, turning a missing or damaged file into one TriangulumError.

    what: the kind of file for the message ("calibration file"); advice: what to do
    when the file is not valid TOML.
    """
    path = Path(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TriangulumError(f"{what} {path} does not exist.") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise TriangulumError(f"{path}: not a valid TOML file ({exc}); {advice}") from None
