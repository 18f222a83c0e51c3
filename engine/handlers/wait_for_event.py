"""wait_for_event: pause the run until a named event whose match expression holds."""

from datetime import UTC, datetime

from engine.errors import NonRetryableError
from engine.registry import Suspend, step_type
from engine.statuses import WaitingFor

SCHEMA = {
    "type": "object",
    "required": ["event_name"],
    "properties": {
        "event_name": {"type": "string", "minLength": 1, "description": "e.g. order.paid"},
        "match": {
            "type": "string",
            "description": "Expression over `event` and the context, e.g. "
            "event.data.order_id == input.order_id",
        },
        "timeout_seconds": {"type": ["number", "null"], "exclusiveMinimum": 0},
    },
    "additionalProperties": False,
}


def resume(config, data):
    if not isinstance(data, dict):
        raise NonRetryableError("event data must be an object")
    return {
        "name": data.get("name", config.get("event_name")),
        "data": data.get("data"),
        "id": data.get("id"),
        "received_at": data.get("received_at") or datetime.now(UTC).isoformat(),
    }


def wake(config):
    raise NonRetryableError(
        f"no {config.get('event_name')!r} event within {config.get('timeout_seconds')} seconds"
    )


@step_type(
    name="wait_for_event",
    config_schema=SCHEMA,
    label="Wait for event",
    category="Flow",
    description="Pause until a matching event arrives (POST /api/v1/events).",
    icon="radio",
    raw_config_keys=frozenset({"match"}),
    resume=resume,
    wake=wake,
)
async def execute(config, context):
    if not isinstance(config.get("event_name"), str) or not config["event_name"]:
        raise NonRetryableError("wait_for_event needs an 'event_name'")
    timeout = config.get("timeout_seconds")
    seconds = float(timeout) if isinstance(timeout, int | float) and timeout > 0 else None
    raise Suspend(WaitingFor.EVENT, seconds=seconds, label=config["event_name"])
