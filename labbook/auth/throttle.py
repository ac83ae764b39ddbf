"""Login throttling per account and per client address (SPEC section 10).

Failures are counted in a fixed window. With ``LABBOOK_REDIS_URL`` set, counts live in Redis
and are shared by every web process; without it they are kept in-process, which is right for
one process (``make run``) and documented as such for production.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

from flask import Flask, current_app


class Counter(Protocol):
    def hit(self, key: str, window: int) -> int: ...

    def get(self, key: str) -> int: ...

    def clear(self, key: str) -> None: ...


class MemoryCounter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: dict[str, tuple[int, float]] = {}

    def _live(self, key: str) -> tuple[int, float] | None:
        item = self._data.get(key)
        if item and item[1] <= time.monotonic():
            self._data.pop(key, None)
            return None
        return item

    def hit(self, key: str, window: int) -> int:
        with self._lock:
            item = self._live(key)
            count, expires = item if item else (0, time.monotonic() + window)
            self._data[key] = (count + 1, expires)
            return count + 1

    def get(self, key: str) -> int:
        with self._lock:
            item = self._live(key)
            return item[0] if item else 0

    def clear(self, key: str) -> None:
        with self._lock:
            self._data.pop(key, None)


class RedisCounter:
    def __init__(self, url: str) -> None:
        import redis

        self._redis = redis.Redis.from_url(url)

    def hit(self, key: str, window: int) -> int:
        pipe = self._redis.pipeline()
        pipe.incr(key)
        pipe.expire(key, window, nx=True)
        count, _ = pipe.execute()
        return int(count)

    def get(self, key: str) -> int:
        value = self._redis.get(key)
        return int(value) if value else 0

    def clear(self, key: str) -> None:
        self._redis.delete(key)


class LoginThrottle:
    def __init__(self, counter: Counter, max_failures: int, window: int) -> None:
        self.counter = counter
        self.max_failures = max_failures
        self.window = window

    @staticmethod
    def keys(email: str, address: str | None) -> list[str]:
        return [f"labbook:login:acct:{email.lower()}", f"labbook:login:addr:{address or '-'}"]

    def blocked(self, email: str, address: str | None) -> bool:
        return any(self.counter.get(k) >= self.max_failures for k in self.keys(email, address))

    def failed(self, email: str, address: str | None) -> None:
        for key in self.keys(email, address):
            self.counter.hit(key, self.window)

    def succeeded(self, email: str) -> None:
        self.counter.clear(self.keys(email, None)[0])


def init_throttle(app: Flask) -> None:
    url = app.config.get("LABBOOK_REDIS_URL")
    counter: Counter = RedisCounter(url) if url else MemoryCounter()
    app.extensions["labbook_login_throttle"] = LoginThrottle(
        counter,
        app.config["LABBOOK_LOGIN_MAX_FAILURES"],
        app.config["LABBOOK_LOGIN_WINDOW_SECONDS"],
    )


def get_throttle() -> LoginThrottle:
    return current_app.extensions["labbook_login_throttle"]
