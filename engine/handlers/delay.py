"""delay: park the run durably for a number of seconds (the worker is released)."""

from engine.errors import NonRetryableError
from engine.registry import Suspend, step_type
from engine.statuses import WaitingFor

SCHEMA = {
    "type": "object",
    "required": ["seconds"],
    "properties": {
        "seconds": {"type": "number", "minimum": 0, "description": "How long to wait."},
    },
    "additionalProperties": False,
}


def _seconds(config) -> float:
    seconds = config.get("seconds")
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
        raise NonRetryableError("delay needs 'seconds', a number >= 0")
    return float(seconds)


def wake(config):
    return {"delayed_seconds": _seconds(config)}


@step_type(
    name="delay",
    config_schema=SCHEMA,
    label="Delay",
    category="Flow",
    description="Wait for a while without holding a worker.",
    icon="clock",
    wake=wake,
)
async def execute(config, context):
    raise Suspend(WaitingFor.DELAY, seconds=_seconds(config), label="delay")
