"""Step types that exist only in the tests: they record what the engine did to them."""

import asyncio
from collections import defaultdict

from engine.errors import NonRetryableError, StepError
from engine.registry import registry, step_type

OBJECT = {"type": "object"}

calls: dict[str, int] = defaultdict(int)
"""How often each (run id, step id) was executed."""
running: dict[str, int] = defaultdict(int)
"""How many probes of one run are executing now, and the most ever seen at once."""
peak: dict[str, int] = defaultdict(int)
cancelled: set[str] = set()


def _key(context) -> str:
    return f"{context['run']['id']}:{context['run']['step_id']}"


if "test_probe" not in registry:

    @step_type(
        name="test_probe",
        config_schema=OBJECT,
        label="Probe",
        category="Test",
        description="Sleeps, counts calls and concurrency, returns its config.",
    )
    async def probe(config, context):
        key, run_id = _key(context), context["run"]["id"]
        calls[key] += 1
        running[run_id] += 1
        peak[run_id] = max(peak[run_id], running[run_id])
        try:
            await asyncio.sleep(config.get("sleep", 0))
        except asyncio.CancelledError:
            cancelled.add(key)
            raise
        finally:
            running[run_id] -= 1
        return {"echo": config, "calls": calls[key]}

    @step_type(
        name="test_flaky",
        config_schema=OBJECT,
        label="Flaky",
        category="Test",
        description="Fails `failures` times (retryably unless fatal), then succeeds.",
    )
    async def flaky(config, context):
        key = _key(context)
        calls[key] += 1
        if calls[key] <= config.get("failures", 0):
            if config.get("fatal"):
                raise NonRetryableError(f"fatal failure {calls[key]}")
            raise StepError(f"failure {calls[key]}")
        return {"calls": calls[key]}

    @step_type(
        name="test_crash",
        config_schema=OBJECT,
        label="Crash",
        category="Test",
        description="Raises an unexpected exception.",
    )
    async def crash(config, context):
        raise RuntimeError("boom")
