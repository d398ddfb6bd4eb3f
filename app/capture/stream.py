"""Send 3D joints to other programs (Blender, Unity, VR) as they are computed, over UDP.

Two encodings, one datagram per pose:
- JSON (`udp://HOST:PORT` or `HOST:PORT`):
    {"type": "pose", "frame": 12, "t": 1234.567, "names": ["nose", ...],
     "joints": [[x, y, z] or null, ...], "confidence": [c, ...]}
  metres in the calibration's world frame; t in seconds on the capture clock; null where a
  joint was not triangulated; confidence is the mean over views, in [0, 1]; `"filled": true`
  marks a pose filled in between two computed ones (app.capture.worker), at the camera rate.
- OSC 1.0 (`osc://HOST:PORT`): a bundle holding `/triangulum/frame` (int32 frame, float64 t)
  and one `/triangulum/joint/<name>` (float32 x, y, z, confidence) per triangulated joint;
  a filled-in pose adds `/triangulum/filled` (int32 1).

The default host is 127.0.0.1. Sending never blocks capture: the sender has its own
thread and mailbox, and a pose that finds the mailbox full replaces the oldest one.
"""

from __future__ import annotations

import json
import logging
import math
import socket
import struct
import threading
from dataclasses import dataclass

import numpy as np

from app.capture.frames import PoseFrame
from app.capture.worker import Mailbox
from calibration.errors import TriangulumError

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
PROTOCOLS = ("json", "osc")


@dataclass(frozen=True)
class StreamTarget:
    host: str
    port: int
    protocol: str = "json"


def parse_stream_target(text: str) -> StreamTarget:
    """"HOST:PORT", ":PORT", "udp://HOST:PORT" (JSON) or "osc://HOST:PORT"."""
    protocol = "json"
    rest = text
    for prefix, proto in (("udp://", "json"), ("osc://", "osc")):
        if text.startswith(prefix):
            protocol, rest = proto, text[len(prefix) :]
    host, sep, port_text = rest.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise TriangulumError(f"stream address '{text}' is not HOST:PORT with a port from 1 to 65535, e.g. 127.0.0.1:9000 or osc://127.0.0.1:9000.")
    return StreamTarget(host.strip("[]") or DEFAULT_HOST, int(port_text), protocol)


def _joint_confidence(pose: PoseFrame) -> np.ndarray:
    """(J,) mean confidence over the views that saw each joint."""
    joints = len(pose.joints3d)
    conf = np.asarray(pose.confidences, dtype=np.float64).reshape(len(pose.cameras), joints)
    seen = np.isfinite(conf)
    total = np.where(seen, conf, 0.0).sum(axis=0)
    count = seen.sum(axis=0)
    return np.divide(total, count, out=np.zeros(joints), where=count > 0)


def _names(pose: PoseFrame) -> list[str]:
    return list(pose.joint_names) or [f"joint{j}" for j in range(len(pose.joints3d))]


def encode_json(pose: PoseFrame) -> bytes:
    joints = [[round(float(v), 5) for v in p] if np.all(np.isfinite(p)) else None for p in np.asarray(pose.joints3d)]
    message = {
        "type": "pose",
        "frame": int(pose.index),
        "t": round(float(pose.t_capture), 6),
        "names": _names(pose),
        "joints": joints,
        "confidence": [round(float(c), 4) for c in _joint_confidence(pose)],
    }
    if pose.filled:
        message["filled"] = True
    return json.dumps(message, separators=(",", ":")).encode("utf-8")


def _osc_string(s: str) -> bytes:
    data = s.encode("utf-8") + b"\0"
    return data + b"\0" * (-len(data) % 4)


def _osc_message(address: str, types: str, *values: float | int) -> bytes:
    return _osc_string(address) + _osc_string("," + types) + struct.pack(">" + types, *values)


def encode_osc(pose: PoseFrame) -> bytes:
    """An OSC bundle (immediate time tag) of the frame message and one message per joint."""
    messages = [_osc_message("/triangulum/frame", "id", int(pose.index), float(pose.t_capture))]
    if pose.filled:
        messages.append(_osc_message("/triangulum/filled", "i", 1))
    for name, p, c in zip(_names(pose), np.asarray(pose.joints3d), _joint_confidence(pose), strict=True):
        if np.all(np.isfinite(p)):
            messages.append(_osc_message(f"/triangulum/joint/{name}", "ffff", *map(float, p), float(c)))
    body = b"".join(struct.pack(">i", len(m)) + m for m in messages)
    return _osc_string("#bundle") + struct.pack(">Q", 1) + body


ENCODERS = {"json": encode_json, "osc": encode_osc}


class PoseStreamer:
    """Sends every pose from `mailbox` to `target` on its own thread."""

    def __init__(self, mailbox: Mailbox, target: StreamTarget) -> None:
        self.mailbox = mailbox
        self.target = target
        self._encode = ENCODERS[target.protocol]
        try:
            infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_DGRAM)
        except socket.gaierror as exc:
            raise TriangulumError(f"stream host '{target.host}' cannot be resolved ({exc.strerror}); use an IP address such as 127.0.0.1.") from exc
        family, _, _, _, self._address = infos[0]
        self._socket = socket.socket(family, socket.SOCK_DGRAM)
        self.sent = 0
        self.errors = 0
        self._thread = threading.Thread(target=self._run, name="pose-stream", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self.mailbox.close()
        self._thread.join(timeout)
        self._socket.close()

    def _run(self) -> None:
        while True:
            pose = self.mailbox.get(timeout=0.5)
            if pose is None:
                if self.mailbox.closed:
                    return
                continue
            try:
                self._socket.sendto(self._encode(pose), self._address)
                self.sent += 1
            except OSError as exc:  # nobody listening, network down: keep going
                self.errors += 1
                if math.log2(self.errors).is_integer():
                    log.warning("stream to %s:%d failed (%s)", self.target.host, self.target.port, exc)
