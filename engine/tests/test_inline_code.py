"""inline_code: user Python in the real bubblewrap sandbox (no mocks), and what it cannot do."""

import asyncio
import json
import shutil
from types import MappingProxyType

import pytest
from django.conf import settings as django_settings

from engine import sandbox
from engine.errors import NonRetryableError, StepError, StepTimeout
from engine.handlers.inline_code import execute
from engine.registry import registry
from engine.tests.sandbox_helpers import group_exists, leader, still_there, wait_for_python

pytestmark = pytest.mark.skipif(
    shutil.which("bwrap") is None, reason="needs bubblewrap (apt-get install bubblewrap)"
)

SETTINGS_FILE = str(django_settings.BASE_DIR / "flowmatrx" / "settings.py")
CONTEXT = {
    "input": {"n": 20, "name": "Ada"},
    "fetch": {"status": 200, "body": {"items": [1, 2, 3]}},
    "run": {"id": "run-1", "step_id": "code", "attempt": 1, "idempotency_key": "run-1:code"},
}


async def run(code: str, **config) -> dict:
    return await execute({"code": code, **config}, MappingProxyType(dict(CONTEXT)))


async def fails(code: str, **config) -> StepError:
    with pytest.raises(StepError) as caught:
        await run(code, **config)
    return caught.value


# -- what works -----------------------------------------------------------------------------


async def test_the_result_comes_from_input_and_context_and_stdout_is_captured():
    output = await run(
        "total = sum(context['fetch']['body']['items'])\n"
        "print('hello', input['name'])\n"
        "result = {'n': input['n'] + total, 'run': context['run']['id']}\n"
    )
    assert output == {"result": {"n": 26, "run": "run-1"}, "stdout": "hello Ada\n"}


@pytest.mark.parametrize(
    "value", [[1, "a", None], {"a": {"b": [1.5]}}, 42, 2.5, -1, "text", True, None]
)
async def test_any_json_value_is_a_result(value):
    assert (await run(f"result = {value!r}"))["result"] == value


async def test_only_result_leaves_the_code_and_a_missing_result_is_none():
    assert await run("secret = 'local'\nprint('x', end='')") == {"result": None, "stdout": "x"}


async def test_the_standard_library_is_there():
    output = await run(
        "import math, re, datetime\nresult = [math.floor(2.5), re.sub('a', 'b', 'aa')]"
    )
    assert output["result"] == [2, "bb"]


async def test_an_exception_fails_the_step_with_its_traceback():
    error = await fails("x = 1\ny = {}\nresult = y['missing']")
    assert isinstance(error, NonRetryableError) and not error.retryable
    message = str(error)
    assert message.startswith("inline_code failed:")
    assert "line 3" in message and "result = y['missing']" in message
    assert message.rstrip().endswith("KeyError: 'missing'")
    assert "bootstrap" not in message and "<string>" not in message


async def test_a_syntax_error_is_clear():
    assert "SyntaxError" in str(await fails("result = (1 +"))


@pytest.mark.parametrize(
    ("code", "why"),
    [
        ("result = {1, 2}", "Object of type set is not JSON serializable"),
        ("result = object()", "Object of type object is not JSON serializable"),
        ("result = float('nan')", "Out of range float values"),
    ],
)
async def test_a_result_that_is_not_json_fails_clearly(code, why):
    message = str(await fails(code))
    assert "the result is not JSON-serializable" in message and why in message


async def test_the_config_is_checked_before_anything_runs():
    with pytest.raises(NonRetryableError, match="timeout_seconds"):
        await run("result = 1", timeout_seconds=0)
    with pytest.raises(NonRetryableError, match="memory_mb"):
        await run("result = 1", memory_mb=8)
    with pytest.raises(NonRetryableError, match="needs 'code'"):
        await run("  ")


async def test_too_much_input_is_refused():
    with pytest.raises(NonRetryableError, match="input too large"):
        await execute({"code": "result = 1"}, {"input": "x" * (sandbox.INPUT_LIMIT + 1)})


def test_the_step_type_is_registered_and_its_code_is_not_a_template():
    step_type = registry.get("inline_code")
    entry = step_type.catalog_entry()
    assert (entry["label"], entry["category"]) == ("Python code", "Code")
    assert entry["config_schema"]["required"] == ["code"]
    assert step_type.raw_config_keys == {"code"}


# -- what it cannot do ----------------------------------------------------------------------


async def test_the_environment_is_empty_and_no_secret_leaks(monkeypatch):
    monkeypatch.setenv("SECRET_KEY", django_settings.SECRET_KEY)
    monkeypatch.setenv("DATABASE_URL", "postgres://postgres:hunter2@127.0.0.1:5432/flowmatrx")
    output = await run(
        "import os\n"
        "pids = sorted(p for p in os.listdir('/proc') if p.isdigit())\n"
        "environs = []\n"
        "for p in pids:\n"
        "    try:\n"
        "        environs.append(open(f'/proc/{p}/environ', 'rb').read().decode())\n"
        "    except OSError as e:\n"
        "        environs.append(repr(e))\n"
        "result = {'env': dict(os.environ), 'pids': pids, 'environs': environs,\n"
        "          'uid': (os.getuid(), os.getgid(), os.getgroups())}\n"
    )
    result = output["result"]
    assert "SECRET_KEY" not in result["env"] and "DATABASE_URL" not in result["env"]
    assert set(result["env"]) <= {"PWD", "LC_CTYPE"}
    assert result["pids"] == ["1"]  # its own pid namespace: nothing of the host is visible
    assert result["uid"] == [65534, 65534, []]
    everything = json.dumps(output)
    assert django_settings.SECRET_KEY not in everything and "hunter2" not in everything


@pytest.mark.parametrize(
    "path",
    [
        "/etc/passwd",
        "/etc/hostname",
        SETTINGS_FILE,
        str(django_settings.BASE_DIR / "var" / "secret_key"),
        "/root/.pyenv/version",
    ],
)
async def test_host_files_cannot_be_read(path):
    error = await fails(f"result = open({path!r}).read()")
    assert "FileNotFoundError" in str(error) or "PermissionError" in str(error)
    assert django_settings.SECRET_KEY not in str(error)


async def test_only_the_system_and_python_are_mounted():
    output = await run("import os\nresult = sorted(os.listdir('/'))")
    assert set(output["result"]) <= {"bin", "dev", "lib", "lib64", "proc", "root", "tmp", "usr"}


@pytest.mark.parametrize(
    "path", ["/usr/evil.py", "/usr/lib/evil.py", "/bin/evil", "__PREFIX__/evil.py", "/evil"]
)
async def test_the_system_is_read_only(path):
    code = "import sys\nopen(PATH.replace('__PREFIX__', sys.base_prefix), 'w').write('x')"
    error = await fails(code.replace("PATH", repr(path)))
    assert "Read-only file system" in str(error) or "PermissionError" in str(error)


async def test_tmp_is_private_and_small():
    assert (await run("open('/tmp/a', 'w').write('ok')\nresult = open('/tmp/a').read()")) == {
        "result": "ok",
        "stdout": "",
    }
    error = await fails("open('/tmp/big', 'wb').write(b'x' * (64 << 20))")
    assert "No space left" in str(error) or "File too large" in str(error)


async def test_object_subclasses_reach_nothing_more():
    output = await run(
        "classes = ().__class__.__base__.__subclasses__()\n"
        "wrap = next(c for c in classes if c.__name__ == '_wrap_close')\n"
        "g = wrap.__init__.__globals__\n"  # the os module's globals, without an import
        "out = {'classes': len(classes), 'root': sorted(g['listdir']('/'))}\n"
        "for path in ['/etc/passwd', PROJECT]:\n"
        "    try:\n"
        "        g['open'](path, g['O_RDONLY'])\n"
        "        out[path] = 'read'\n"
        "    except OSError as e:\n"
        "        out[path] = type(e).__name__\n"
        "out['system'] = g['system']('cat /etc/passwd > /dev/null 2>&1')\n"
        "result = out\n".replace("PROJECT", repr(SETTINGS_FILE))
    )
    result = output["result"]
    assert result["classes"] > 100
    assert "etc" not in result["root"] and "work" not in result["root"]
    assert [result["/etc/passwd"], result[SETTINGS_FILE]] == ["FileNotFoundError"] * 2
    assert result["system"] != 0  # a shell runs, in the same sandbox, and finds no /etc


async def test_there_is_no_network():
    connections = []
    server = await asyncio.start_server(
        lambda r, w: connections.append(w) or w.close(), "127.0.0.1", 0
    )
    port = server.sockets[0].getsockname()[1]
    try:
        error = await fails(
            f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)"
        )
        assert "OSError" in str(error) or "ConnectionRefusedError" in str(error)
        error = await fails("import socket\nsocket.getaddrinfo('example.com', 443)")
        assert "gaierror" in str(error)
    finally:
        server.close()
        await server.wait_closed()
    assert connections == []


async def test_a_fork_bomb_is_contained_by_the_process_limit_and_killed():
    code = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
    task = asyncio.ensure_future(run(code, timeout_seconds=1))
    snapshot = await wait_for_python()  # bwrap and the sandboxed Python (and its forks)
    with pytest.raises(StepTimeout, match="timed out after 1 seconds"):
        await task
    assert still_there(snapshot) == []
    assert not group_exists(leader(snapshot))


async def test_a_fork_bomb_that_stops_at_the_limit_fails_clearly():
    error = await fails("import os\nwhile True:\n    os.fork()", timeout_seconds=5)
    assert "BlockingIOError" in str(error)


@pytest.mark.parametrize(
    "code",
    ["x = 'x' * 10**10", "data = []\nwhile True:\n    data.append(bytearray(1 << 20))"],
)
async def test_a_memory_bomb_runs_out_of_memory(code):
    error = await fails(code, memory_mb=64)
    assert isinstance(error, NonRetryableError)
    assert str(error).startswith("inline_code ran out of memory (memory_mb=64)")
    assert "MemoryError" in str(error)


async def test_an_infinite_loop_is_killed_at_the_timeout_and_nothing_is_left():
    task = asyncio.ensure_future(run("while True:\n    pass", timeout_seconds=1))
    snapshot = await wait_for_python()  # bwrap and the sandboxed Python (and its forks)
    with pytest.raises(StepTimeout) as caught:
        await task
    assert caught.value.retryable
    assert still_there(snapshot) == []
    assert not group_exists(leader(snapshot))


@pytest.mark.parametrize(
    "code", ["print('x' * 10**8)", "import os\nos.write(2, b'x' * 10**8)", "result = 'x' * 10**7"]
)
async def test_too_much_output_is_killed(code):
    with pytest.raises(NonRetryableError, match="output too large"):
        await run(code)


async def test_cancelling_the_step_kills_and_reaps_the_sandbox():
    task = asyncio.ensure_future(run("while True:\n    pass", timeout_seconds=60))
    snapshot = await wait_for_python()  # bwrap and the sandboxed Python (and its forks)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert still_there(snapshot) == []
    assert not group_exists(leader(snapshot))


async def test_the_executors_timeout_kills_and_reaps_the_sandbox():
    task = asyncio.ensure_future(run("import time\ntime.sleep(60)", timeout_seconds=60))
    snapshot = await wait_for_python()  # bwrap and the sandboxed Python (and its forks)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await task
    assert still_there(snapshot) == []


# -- without the sandbox --------------------------------------------------------------------


@pytest.mark.parametrize("bwrap", [None, "/bin/false"])
async def test_without_a_working_sandbox_the_step_refuses_to_run(monkeypatch, bwrap):
    monkeypatch.setattr(sandbox, "BWRAP", bwrap)
    error = await fails("result = 1")
    assert isinstance(error, NonRetryableError)
    message = str(error)
    assert "needs the bubblewrap sandbox (Debian package bubblewrap)" in message
    assert "FLOWMATRX_UNSAFE_INLINE_CODE=1" in message


async def test_the_operator_can_allow_running_unsandboxed(monkeypatch, settings):
    monkeypatch.setattr(sandbox, "BWRAP", None)
    monkeypatch.setenv("SECRET_KEY", settings.SECRET_KEY)
    settings.FLOWMATRX_UNSAFE_INLINE_CODE = True
    output = await run(
        "import os\nprint('hi')\n"
        "result = {'host_etc': os.path.exists('/etc/passwd'), 'env': dict(os.environ),"
        " 'n': input['n']}"
    )
    result = output["result"]
    assert result["host_etc"] is True and result["n"] == 20 and output["stdout"] == "hi\n"
    assert "SECRET_KEY" not in result["env"]
    with pytest.raises(StepTimeout):
        await run("while True:\n    pass", timeout_seconds=0.5)
