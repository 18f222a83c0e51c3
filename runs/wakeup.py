"""Waking workers when a run becomes claimable (created, resumed, retried, cancelled).

On PostgreSQL this is `NOTIFY flowmatrx_runs` inside the writing transaction (delivered
on commit, to workers on any machine). In-process listeners (the embedded worker, on
SQLite or PostgreSQL) are also called after commit, so a worker in the same process never
waits for its poll.
"""

import threading
from collections.abc import Callable

from django.db import connection, transaction

CHANNEL = "flowmatrx_runs"

_listeners: list[Callable[[str], None]] = []
_lock = threading.Lock()


def add_listener(callback: Callable[[str], None]) -> None:
    with _lock:
        _listeners.append(callback)


def remove_listener(callback: Callable[[str], None]) -> None:
    with _lock:
        if callback in _listeners:
            _listeners.remove(callback)


def notify(message: str) -> None:
    """Tell workers about `message` ("<run id>" or "cancel:<run id>") once this commits."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", [CHANNEL, message])
    notify_in_process(message)


def notify_in_process(message: str) -> None:
    """Only the in-process listeners (a new run's row NOTIFYs by itself on PostgreSQL)."""

    def call_listeners():
        with _lock:
            listeners = list(_listeners)
        for callback in listeners:
            callback(message)

    transaction.on_commit(call_listeners)
