"""Login rate limiting: after FLOWMATRX_LOGIN_ATTEMPTS failed sign-ins for one username
from one address within FLOWMATRX_LOGIN_WINDOW_SECONDS, further attempts are refused
(without checking the password) until the window that began at the first failure ends.

Counters live in Django's cache: Redis when REDIS_URL is set (shared by every process),
else the process's memory (the embedded single-process mode). The address is
REMOTE_ADDR; behind a reverse proxy, have the proxy set it (X-Forwarded-For is not
trusted, since any client can send it).
"""

from __future__ import annotations

import hashlib
import math
import time

from django.conf import settings
from django.core.cache import cache


def client_address(request) -> str:
    return request.META.get("REMOTE_ADDR", "") if request is not None else ""


def _key(username: str, address: str) -> str:
    digest = hashlib.sha256(f"{username.strip().lower()}\0{address}".encode()).hexdigest()
    return f"flowmatrx:login-failures:{digest}"


def seconds_blocked(username: str, address: str) -> int:
    """How long this username+address must wait before trying again (0: not blocked)."""
    key = _key(username, address)
    state = cache.get_many([key, f"{key}:until"])
    if state.get(key, 0) < settings.FLOWMATRX_LOGIN_ATTEMPTS:
        return 0
    until = state.get(f"{key}:until")
    if until is None:
        return 0
    return max(1, math.ceil(until - time.time()))


def record_failure(username: str, address: str) -> None:
    key = _key(username, address)
    window = settings.FLOWMATRX_LOGIN_WINDOW_SECONDS
    if cache.add(key, 0, window):
        cache.set(f"{key}:until", time.time() + window, window)
    try:
        cache.incr(key)
    except ValueError:  # the window ended between add and incr: start a new one
        cache.set(key, 1, window)
        cache.set(f"{key}:until", time.time() + window, window)


def clear(username: str, address: str) -> None:
    key = _key(username, address)
    cache.delete_many([key, f"{key}:until"])


def describe_wait(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"
