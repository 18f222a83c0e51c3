"""Process inspection for the sandbox tests, from /proc (no psutil)."""

import asyncio
import os
import sys
from pathlib import Path


def _stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, start time) of a process, or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    return int(fields[1]), fields[19]


def descendants(root: int | None = None) -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, start time) of every process below `root` (default: this one)."""
    root = os.getpid() if root is None else root
    children: dict[int, list[int]] = {}
    stats = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _stat(int(entry))) is not None:
            stats[int(entry)] = stat
            children.setdefault(stat[0], []).append(int(entry))
    found, todo = {}, [root]
    while todo:
        for pid in children.get(todo.pop(), []):
            found[pid] = stats[pid]
            todo.append(pid)
    return found


def still_there(snapshot: dict[int, tuple[int, str]]) -> list[int]:
    """The processes of `snapshot` that still exist (zombies included), pid reuse aside."""
    return [pid for pid, (_, started) in snapshot.items() if (_stat(pid) or (0, ""))[1] == started]


def leader(snapshot: dict[int, tuple[int, str]]) -> int:
    """The one child of this process in `snapshot` (bwrap: its process group's leader)."""
    (pid,) = [pid for pid, (parent, _) in snapshot.items() if parent == os.getpid()]
    return pid


def group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


async def wait_for_python(timeout: float = 5.0) -> dict[int, tuple[int, str]]:
    """Wait until the sandboxed Python runs below this process; return all its descendants."""
    python = os.fsencode(os.path.realpath(sys.executable)) + b"\0-I\0-S\0-X\0utf8\0"
    async with asyncio.timeout(timeout):
        while True:
            found = descendants()
            if any(_cmdline(pid).startswith(python) for pid in found):
                return found
            await asyncio.sleep(0.01)


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""
