"""transform: build an output object from templates (resolved once, before the call)."""

from engine.errors import NonRetryableError
from engine.registry import step_type

SCHEMA = {
    "type": "object",
    "required": ["mapping"],
    "properties": {
        "mapping": {
            "type": "object",
            "description": "Keys of the output, each a value or a template like {{ step.field }}.",
        }
    },
    "additionalProperties": False,
}


@step_type(
    name="transform",
    config_schema=SCHEMA,
    label="Transform",
    category="Data",
    description="Build an object from templates over the run's context.",
    icon="shuffle",
)
async def execute(config, context):
    mapping = config.get("mapping")
    if not isinstance(mapping, dict):
        raise NonRetryableError("transform needs a 'mapping' object")
    return dict(mapping)
