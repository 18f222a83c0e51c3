"""Sending the same request from several threads at once (each thread has its own
database connection, as concurrent requests in production do)."""

import json
import threading

from django.db import connections
from django.test import Client


def at_once(n: int, method: str, path: str, body, headers: dict) -> list:
    """Send the request from `n` threads released together; returns the responses."""
    barrier = threading.Barrier(n)
    responses: list = [None] * n
    failures: list = []

    def send(i: int) -> None:
        try:
            barrier.wait(timeout=10)
            responses[i] = Client().generic(
                method, path, json.dumps(body), content_type="application/json", headers=headers
            )
        except Exception as exc:  # reported by the caller's assertion
            failures.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=send, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not failures, failures
    return responses
