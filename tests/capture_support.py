"""Helpers shared by the capture tests."""

from __future__ import annotations

import time

from app.capture.frames import clock


def wait_for(condition, timeout: float = 10.0) -> bool:
    """Poll `condition` until it holds (True) or `timeout` seconds pass (False)."""
    deadline = clock() + timeout
    while not condition():
        if clock() > deadline:
            return False
        time.sleep(0.02)
    return True
