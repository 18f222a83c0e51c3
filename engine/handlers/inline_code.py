"""inline_code: run a Python snippet in the bubblewrap sandbox (engine/sandbox.py, SPEC §6)."""

from engine.errors import NonRetryableError
from engine.registry import step_type
from engine.sandbox import run_python

MAX_TIMEOUT_SECONDS = 300
MIN_MEMORY_MB, MAX_MEMORY_MB = 32, 4096

SCHEMA = {
    "type": "object",
    "required": ["code"],
    "properties": {
        "code": {
            "type": "string",
            "minLength": 1,
            "description": "Python 3 (standard library only). It reads `input` (the run's "
            "input) and `context` (every completed step's output) and sets `result`; "
            "print() goes to stdout. Not rendered as a template.",
        },
        "timeout_seconds": {
            "type": "number",
            "exclusiveMinimum": 0,
            "maximum": MAX_TIMEOUT_SECONDS,
            "default": 10,
            "description": "Wall-clock limit; the code is killed after it.",
        },
        "memory_mb": {
            "type": "integer",
            "minimum": MIN_MEMORY_MB,
            "maximum": MAX_MEMORY_MB,
            "default": 256,
            "description": "Memory limit (address space) in MB.",
        },
    },
    "additionalProperties": False,
}


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@step_type(
    name="inline_code",
    config_schema=SCHEMA,
    label="Python code",
    category="Code",
    description="Run a Python snippet in a sandbox: it reads `input` and `context` and "
    "sets `result`.",
    icon="code",
    # Python braces are not template syntax, and data must never become code.
    raw_config_keys=frozenset({"code"}),
)
async def execute(config, context):
    code = config.get("code")
    if not isinstance(code, str) or not code.strip():
        raise NonRetryableError("inline_code needs 'code', a Python snippet")
    timeout = config.get("timeout_seconds", 10)
    if not _is_number(timeout) or not 0 < timeout <= MAX_TIMEOUT_SECONDS:
        raise NonRetryableError(
            f"inline_code 'timeout_seconds' must be above 0 and at most {MAX_TIMEOUT_SECONDS}"
        )
    memory_mb = config.get("memory_mb", 256)
    if not _is_number(memory_mb) or not MIN_MEMORY_MB <= memory_mb <= MAX_MEMORY_MB:
        raise NonRetryableError(
            f"inline_code 'memory_mb' must be from {MIN_MEMORY_MB} to {MAX_MEMORY_MB}"
        )
    result, stdout = await run_python(
        code, context.get("input"), dict(context), timeout_seconds=timeout, memory_mb=memory_mb
    )
    return {"result": result, "stdout": stdout}
