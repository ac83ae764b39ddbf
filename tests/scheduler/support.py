"""Helpers for the scheduler tests."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(probe: Callable[[], T], timeout: float, what: str, every: float = 0.1) -> T:
    """Poll ``probe`` until it returns something truthy, for at most ``timeout`` seconds
    (another process is doing the work; nothing here depends on how fast it is).

    :raises AssertionError: naming ``what`` when the deadline passes.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)
