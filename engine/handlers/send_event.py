"""send_event: emit a named event, exactly as `POST /api/v1/events` would (SPEC §4).

The store delivers it (runs/events.py `deliver_event`): it starts the workflows with a
matching event trigger and resumes the runs waiting for it. Its id is derived from the run,
the step and the attempt, so a step replayed after a crash never emits twice.
"""

from engine.errors import NonRetryableError
from engine.registry import Effect, step_type

SCHEMA = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {
            "type": "string",
            "minLength": 1,
            "maxLength": 200,
            "description": "Event name, e.g. order.created",
        },
        "data": {"description": "The event's data; values may be templates.", "default": None},
    },
    "additionalProperties": False,
}


@step_type(
    name="send_event",
    config_schema=SCHEMA,
    label="Send event",
    category="Flow",
    description="Emit an event: starts event-triggered workflows and resumes waiting runs.",
    icon="send",
    needs_store=True,
)
async def execute(config, context):
    name = config.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise NonRetryableError("send_event needs a 'name' of 1 to 200 characters")
    return_data = config.get("data")
    raise Effect("send_event", {"name": name, "data": return_data})
