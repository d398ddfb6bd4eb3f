"""Source spec strings: `KIND:TARGET?option=value&option=value`.

    webcam:0?width=1280&height=720&fps=30&mjpg=1   a camera by index (or webcam:/dev/video2)
    video:cam01.mp4?fps=30&loop=1                  a file paced at 30 fps (default: its own rate)
    video:cam01.mp4?lockstep=1                     a file read as fast as it is consumed
    images:frames/?fps=10                          the images of a folder in name order
    session:rec/?speed=1&start=2.5                 every camera of a recorded session
                                                   (speed=0: as fast as possible)
    test:cam0?fps=30&width=640&height=480&frames=300   a synthetic moving pattern

Every kind takes `name=` to name the camera (default: derived from the target). A session
spec opens one source per recorded camera, all sharing one playback timeline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from app.capture.pattern import TestPatternSource
from app.capture.session import Playback, SessionCameraSource, open_session
from app.capture.sources import CameraSource, ImagesSource, VideoSource, WebcamSource
from calibration.errors import TriangulumError

OPTIONS = {
    "webcam": {"name", "width", "height", "fps", "mjpg"},
    "video": {"name", "fps", "loop", "lockstep"},
    "images": {"name", "fps", "loop", "lockstep"},
    "session": {"speed", "loop", "start"},
    "test": {"name", "fps", "width", "height", "frames", "lockstep"},
}


@dataclass(frozen=True)
class SourceSpec:
    kind: str
    target: str
    options: dict[str, str] = field(default_factory=dict)
    text: str = ""

    def _fail(self, what: str) -> TriangulumError:
        return TriangulumError(f"source '{self.text}': {what}")

    def number(self, key: str, default: float | None) -> float | None:
        if key not in self.options:
            return default
        try:
            value = float(self.options[key])
        except ValueError:
            raise self._fail(f"option {key}={self.options[key]!r} is not a number.") from None
        if value < 0:
            raise self._fail(f"option {key}={value:g} must not be negative.")
        return value

    def integer(self, key: str, default: int | None) -> int | None:
        value = self.number(key, default)
        if value is not None and value != int(value):
            raise self._fail(f"option {key}={value:g} must be a whole number.")
        return None if value is None else int(value)

    def flag(self, key: str, default: bool = False) -> bool:
        value = self.options.get(key)
        if value is None:
            return default
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise self._fail(f"option {key}={value!r} must be 1 or 0.")


def parse_spec(text: str) -> SourceSpec:
    """Split a spec string into kind, target and options; reject unknown kinds and options."""
    kind, sep, rest = text.partition(":")
    if not sep or kind not in OPTIONS:
        raise TriangulumError(
            f"source '{text}' is not of the form KIND:TARGET; KIND is one of {sorted(OPTIONS)}, e.g. video:cam01.mp4 or webcam:0."
        )
    target, _, query = rest.partition("?")
    options: dict[str, str] = {}
    for pair in filter(None, query.split("&")):
        key, has_value, value = pair.partition("=")
        options[key] = value if has_value else "1"
    spec = SourceSpec(kind, target, options, text)
    unknown = sorted(set(options) - OPTIONS[kind])
    if unknown:
        raise spec._fail(f"unknown option(s) {unknown}; {kind} sources take {sorted(OPTIONS[kind])}.")
    return spec


def _existing(spec: SourceSpec, want_dir: bool) -> Path:
    path = Path(spec.target).expanduser()
    if not (path.is_dir() if want_dir else path.is_file()):
        raise spec._fail(f"{'folder' if want_dir else 'file'} {path} does not exist; check the path.")
    return path


def sources_from_spec(spec: SourceSpec) -> list[CameraSource]:
    """The camera sources a spec names (several for a session)."""
    name = spec.options.get("name")
    lockstep = spec.flag("lockstep")
    if spec.kind == "webcam":
        device: int | str = int(spec.target) if spec.target.isdigit() else spec.target
        if device == "":
            raise spec._fail("give a camera index or device path, e.g. webcam:0.")
        default = f"webcam{device}" if isinstance(device, int) else Path(device).name
        return [
            WebcamSource(
                name or default,
                device,
                spec.integer("width", None),
                spec.integer("height", None),
                spec.number("fps", None),
                spec.flag("mjpg", True),
            )
        ]
    if spec.kind == "video":
        path = _existing(spec, want_dir=False)
        fps = spec.number("fps", None)
        if fps == 0:
            raise spec._fail("fps must be positive; use lockstep=1 to read without pacing.")
        return [VideoSource(name or path.stem, path, fps, not lockstep, spec.flag("loop"))]
    if spec.kind == "images":
        path = _existing(spec, want_dir=True)
        fps = spec.number("fps", 30.0)
        if not fps:
            raise spec._fail("fps must be positive; use lockstep=1 to read without pacing.")
        return [ImagesSource(name or path.name, path, fps, not lockstep, spec.flag("loop"))]
    if spec.kind == "test":
        fps = spec.number("fps", 30.0)
        if not fps:
            raise spec._fail("fps must be positive; use lockstep=1 to read without pacing.")
        try:
            return [
                TestPatternSource(
                    name or spec.target or "test",
                    spec.integer("width", 640),
                    spec.integer("height", 480),
                    fps,
                    not lockstep,
                    spec.integer("frames", None),
                )
            ]
        except ValueError as exc:
            raise spec._fail(str(exc)) from None
    path = _existing(spec, want_dir=True)
    session = open_session(path)
    playback = Playback(session, spec.number("speed", 1.0), spec.flag("loop"), spec.number("start", None))
    return [SessionCameraSource(playback, track) for track in session.tracks if track.frames]


def open_sources(texts: list[str]) -> list[CameraSource]:
    """Sources for several spec strings; camera names must come out unique."""
    sources = []
    for text in texts:
        for source in sources_from_spec(parse_spec(text)):
            source.spec = text
            sources.append(source)
    names = [s.name for s in sources]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise TriangulumError(f"camera name(s) {dupes} are used twice; add ?name=... to the source specs to tell them apart.")
    return sources
