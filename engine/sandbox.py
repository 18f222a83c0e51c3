"""Run a Python snippet out of the server's process, in a bubblewrap sandbox (SPEC §6).

The snippet runs in a fresh interpreter (`python -I -S`) under bwrap: new mount, pid,
network (no interface but its own loopback), ipc and uts namespaces; only /usr and the
Python install mounted, read-only; an empty environment; a small private /tmp; uid/gid 65534 and no
capabilities. A tiny bootstrap sets the resource limits, reads {code, input, context} as
JSON on stdin, runs the code and writes one JSON document, {"result": ...} or
{"error": "Traceback ..."}, on what was fd 2; the code's own stdout and stderr go to fd 1.
The parent caps what it sends and reads. At the wall-clock timeout, on an output overflow
or when its task is cancelled it SIGKILLs the code, which is the init of the sandbox's pid
namespace (`--as-pid-1`), so every process in there dies with it, and waits for bwrap to
reap it and exit: nothing is left behind.

As root, bwrap's user namespace would map the sandbox to uid 0 outside, for which the
kernel does not enforce RLIMIT_NPROC (no fork-bomb limit); so as root bwrap keeps the
host's user namespace and `setpriv` switches to 65534, with no capabilities left and
no_new_privs, before Python starts.
"""

import asyncio
import json
import math
import os
import shutil
import signal
import sys
from contextlib import suppress
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

from django.conf import settings

from engine.errors import NonRetryableError, StepTimeout

BWRAP: str | None = shutil.which("bwrap")
SETPRIV: str | None = shutil.which("setpriv")
NOBODY = 65534

MiB = 1024 * 1024
INPUT_LIMIT = 1 * MiB
"""The most JSON (code, input and context) sent to the sandbox."""
RESULT_LIMIT = 1 * MiB
"""The most JSON read back; more kills the sandbox ("output too large")."""
STDOUT_LIMIT = 1 * MiB
"""The most stdout read; more kills the sandbox ("output too large")."""
STDOUT_KEPT = 64 * 1024
"""The stdout kept in the step's output; the rest is cut."""
TMP_BYTES = 16 * MiB
PROBE_SECONDS = 10.0
GRACE_SECONDS = 2.0

# Runs in the sandbox. Limits first, then the payload; only `result` leaves the code's
# namespace. A forked child that finishes the code exits quietly (one reply, by the parent).
BOOTSTRAP = """\
import json, linecache, os, resource, sys, traceback
memory, cpu = int(sys.argv[1]), int(sys.argv[2])
for kind, value in (
    (resource.RLIMIT_AS, memory), (resource.RLIMIT_CPU, cpu),
    (resource.RLIMIT_FSIZE, 8 << 20), (resource.RLIMIT_NPROC, 64),
    (resource.RLIMIT_NOFILE, 64), (resource.RLIMIT_CORE, 0),
):
    resource.setrlimit(kind, (value, value))
reply = os.fdopen(os.dup(2), "w", encoding="utf-8")
os.dup2(1, 2)
payload = json.load(sys.stdin)
code, me = payload["code"], os.getpid()
linecache.cache["<code>"] = (len(code), None, code.splitlines(True), "<code>")
scope = {"__name__": "__main__", "input": payload["input"], "context": payload["context"]}
del payload
try:
    exec(compile(code, "<code>", "exec"), scope)
    out = {"result": scope.get("result")}
except BaseException as exc:
    tb = exc.__traceback__.tb_next if exc.__traceback__ else None
    out = {"error": "".join(traceback.format_exception(type(exc), exc, tb))}
try:
    sys.stdout.flush()
except BaseException:
    pass
if os.getpid() != me:
    os._exit(0)
try:
    text = json.dumps(out, allow_nan=False)
except MemoryError:
    text = json.dumps({"error": "MemoryError: the result does not fit in memory_mb"})
except (TypeError, ValueError, RecursionError) as exc:
    text = json.dumps({"error": f"the result is not JSON-serializable: {exc}"})
reply.write(text)
reply.flush()
os._exit(0)
"""


class SandboxResult(NamedTuple):
    result: Any
    stdout: str


async def run_python(
    code: str, input: Any, context: Any, *, timeout_seconds: float = 10, memory_mb: int = 256
) -> SandboxResult:
    """Run `code` with `input` and `context` in its globals; return its `result` and stdout.

    Raises NonRetryableError (the code raised, a bad result, output too large, no sandbox)
    or StepTimeout (the wall-clock limit passed; the sandbox is killed).
    """
    payload = json.dumps({"code": code, "input": input, "context": context}, default=str)
    data = payload.encode()
    if len(data) > INPUT_LIMIT:
        raise NonRetryableError(
            f"inline_code input too large: {len(data)} bytes of code, input and context "
            f"(at most {INPUT_LIMIT} bytes)"
        )
    limits = [str(int(memory_mb * MiB)), str(math.ceil(timeout_seconds) + 1)]
    python = [_interpreter(), "-I", "-S", "-X", "utf8", "-c", BOOTSTRAP, *limits]
    problem = await sandbox_problem()
    if problem is None:
        argv = sandbox_argv(python)
    elif getattr(settings, "FLOWMATRX_UNSAFE_INLINE_CODE", False):
        argv = python  # the operator's choice: still out of process, limits and timeout
    else:
        raise NonRetryableError(
            "inline_code needs the bubblewrap sandbox (Debian package bubblewrap), which "
            f"is not usable here: {problem}. Install it, or set "
            "FLOWMATRX_UNSAFE_INLINE_CODE=1 to run unsandboxed"
        )
    try:
        returncode, stdout, reply = await _run(
            argv, data, timeout_seconds, sandboxed=problem is None
        )
    except TimeoutError:
        raise StepTimeout(
            f"inline_code timed out after {timeout_seconds:g} seconds (killed)"
        ) from None
    return _outcome(returncode, stdout, reply, memory_mb)


def sandbox_argv(command: list[str]) -> list[str]:
    """The bwrap command line that runs `command` (absolute paths) in the sandbox."""
    argv = [BWRAP or "bwrap", "--die-with-parent", "--new-session", "--as-pid-1", "--clearenv"]
    argv += _mounts()
    argv += ["--proc", "/proc", "--dev", "/dev"]
    argv += ["--perms", "1777", "--size", str(TMP_BYTES), "--tmpfs", "/tmp", "--chdir", "/tmp"]
    if os.geteuid() != 0:
        argv += ["--unshare-all", "--unshare-user", "--disable-userns"]
        return [*argv, "--uid", str(NOBODY), "--gid", str(NOBODY), "--cap-drop", "ALL", *command]
    argv += ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts"]
    argv += ["--unshare-cgroup-try", "--cap-drop", "ALL"]
    argv += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--cap-add", "CAP_SETPCAP"]
    argv += [SETPRIV or "setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    argv += ["--bounding-set=-all", "--inh-caps=-all", "--no-new-privs", "--"]
    return argv + command


_working: set[tuple] = set()


async def sandbox_problem() -> str | None:
    """Why the sandbox cannot run here, or None. A working setup is remembered."""
    if BWRAP is None:
        return "bwrap is not installed"
    if os.geteuid() == 0 and SETPRIV is None:
        return "setpriv (util-linux) is not installed"
    key = (BWRAP, SETPRIV, os.geteuid())
    if key in _working:
        return None
    try:
        returncode, _, err = await _run(
            sandbox_argv([_interpreter(), "-I", "-S", "-c", "pass"]), b"", PROBE_SECONDS
        )
    except OSError as exc:
        return f"bwrap could not start ({exc})"
    except TimeoutError:
        return "bwrap did not start in time"
    if returncode != 0:
        detail = (err or b"").decode("utf-8", "replace").strip()[:500]
        return detail or f"bwrap exited with status {returncode}"
    _working.add(key)
    return None


def _interpreter() -> str:
    return os.path.realpath(sys.executable)


def _mounts() -> list[str]:
    """Read-only binds of /usr, the merged-/usr links (or dirs) and the Python install."""
    args = ["--ro-bind", "/usr", "/usr"]
    for path in ("/bin", "/lib", "/lib64"):
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    roots: list[Path] = [Path("/usr"), Path("/bin"), Path("/lib"), Path("/lib64")]
    for place in (Path(sys.base_prefix).resolve(), Path(_interpreter()).parent):
        if any(place.is_relative_to(root) for root in roots):
            continue
        # bwrap would create the parents 0700 (unreadable by uid 65534, e.g. /root)
        for parent in reversed(place.parents[:-1]):
            args += ["--perms", "0755", "--dir", str(parent)]
        args += ["--ro-bind", str(place), str(place)]
        roots.append(place)
    return args


async def _run(
    argv: list[str], data: bytes, timeout: float, *, sandboxed: bool = True
) -> tuple[int, bytes | None, bytes | None]:
    """Run argv in a new session with an empty environment, feed `data` on stdin and
    return (exit status, stdout, stderr); a stream over its cap comes back as None (the
    code is then killed). TimeoutError after `timeout` seconds; on that, on cancellation
    or on any error the code is killed and reaped before this returns."""
    proc = await _start(argv, sandboxed)
    stop = partial(_stop, proc, sandboxed)
    try:
        async with asyncio.timeout(timeout):
            _, out, err = await asyncio.gather(
                _feed(proc, data),
                _read(proc.stdout, STDOUT_LIMIT, stop),
                _read(proc.stderr, RESULT_LIMIT, stop),
            )
            await proc.wait()
    finally:
        await _reap(proc, stop)
    return proc.returncode, out, err


async def _start(argv: list[str], sandboxed: bool):
    starting = asyncio.ensure_future(
        asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={},
            cwd="/",
            start_new_session=True,
        )
    )
    try:
        return await asyncio.shield(starting)
    except asyncio.CancelledError:
        # Cancelled mid-start: asyncio would kill bwrap alone and orphan the code. Let the
        # start finish, then stop and reap it like any other run.
        with suppress(OSError):
            proc = await starting
            await _reap(proc, partial(_stop, proc, sandboxed))
        raise


async def _feed(proc, data: bytes) -> None:
    try:
        proc.stdin.write(data)
        await proc.stdin.drain()
    except (BrokenPipeError, ConnectionResetError):
        pass  # it ended before reading everything; its exit status says why
    finally:
        proc.stdin.close()


async def _read(stream, limit: int, stop) -> bytes | None:
    data: bytearray | None = bytearray()
    while chunk := await stream.read(64 * 1024):
        if data is None:
            continue  # stopped: drain to EOF so the pipe closes
        data += chunk
        if len(data) > limit:
            stop()
            data = None
    return None if data is None else bytes(data)


def _stop(proc, sandboxed: bool) -> None:
    """SIGKILL the code. Sandboxed, that is bwrap's child (`--as-pid-1`: the init of the
    sandbox's pid namespace, so every process in it dies too), which bwrap reaps before
    it exits: nothing is orphaned. Unsandboxed, the code's process group."""
    pids = _children(proc.pid) if sandboxed else []
    for pid in pids:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    if not pids:
        _killpg(proc.pid)


def _children(pid: int) -> list[int]:
    try:
        return [
            int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        ]
    except OSError:
        return []


def _killpg(pgid: int) -> None:
    with suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


async def _reap(proc, stop) -> None:
    """Stop the code if it still runs, wait for it and let its pipes close."""
    if proc.returncode is None:
        stop()
    proc.stdin.close()
    try:
        async with asyncio.timeout(GRACE_SECONDS):
            await proc.wait()
    except TimeoutError:
        _killpg(proc.pid)
        await proc.wait()
    _killpg(proc.pid)  # what an unsandboxed run may have forked
    for stream in (proc.stdout, proc.stderr):
        with suppress(TimeoutError):
            async with asyncio.timeout(GRACE_SECONDS):
                while await stream.read(64 * 1024):
                    pass


def _outcome(
    returncode: int, stdout: bytes | None, reply: bytes | None, memory_mb: int
) -> SandboxResult:
    if stdout is None:
        raise NonRetryableError(
            f"inline_code output too large: over {STDOUT_LIMIT // MiB} MiB of stdout"
        )
    if reply is None:
        raise NonRetryableError(
            f"inline_code output too large: a result over {RESULT_LIMIT // MiB} MiB of JSON"
        )
    try:
        doc = json.loads(reply)
    except ValueError:
        doc = None
    if not isinstance(doc, dict) or not ("result" in doc or isinstance(doc.get("error"), str)):
        raise NonRetryableError(_died(returncode, reply, stdout))
    if "error" in doc:
        error = _tail(doc["error"], 15)
        last = error.splitlines()[-1] if error else ""
        if last.startswith("MemoryError"):
            raise NonRetryableError(
                f"inline_code ran out of memory (memory_mb={memory_mb}):\n{error}"
            )
        separator = "\n" if "\n" in error else " "
        raise NonRetryableError(f"inline_code failed:{separator}{error}")
    text = stdout.decode("utf-8", "replace")
    if len(text) > STDOUT_KEPT:
        text = text[:STDOUT_KEPT] + "\n[stdout truncated]"
    return SandboxResult(doc["result"], text)


def _died(returncode: int, reply: bytes, stdout: bytes) -> str:
    """Why the sandbox ended without a reply."""
    signum = -returncode if returncode < 0 else returncode - 128 if returncode > 128 else 0
    if signum in (signal.SIGKILL, signal.SIGXCPU):
        name = signal.Signals(signum).name
        return (
            f"inline_code was killed by {name} (its CPU time limit, or the host ran out of memory)"
        )
    if signum > 0:
        with suppress(ValueError):
            return f"inline_code was killed by {signal.Signals(signum).name}"
    detail = reply.decode("utf-8", "replace").strip()
    if detail.startswith("bwrap:"):
        return f"the inline_code sandbox failed: {detail[:500]}"
    detail = detail or _tail(stdout.decode("utf-8", "replace"), 10)
    message = f"inline_code ended (exit status {returncode}) without a result"
    return f"{message}:\n{detail[-2000:]}" if detail else message


def _tail(text: str, lines: int) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])[-4000:]
