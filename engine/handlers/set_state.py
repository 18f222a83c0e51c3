"""set_state: write keys of the workflow's persistent state (SPEC §4, `{{ state.key }}`).

The store writes them in one transaction under the state row's lock, with a
`state.updated` run event: concurrent runs lose no write. `values` set keys;
`increment` adds numbers to keys atomically (a counter that concurrent runs share).
"""

from engine.errors import NonRetryableError
from engine.registry import Effect, step_type

MAX_KEYS = 100

SCHEMA = {
    "type": "object",
    "properties": {
        "values": {
            "type": "object",
            "default": {},
            "description": "Keys to set; values may be templates like {{ fetch.body.cursor }}.",
        },
        "increment": {
            "type": "object",
            "default": {},
            "additionalProperties": {"type": "number"},
            "description": "Keys to add a number to, atomically (a missing key counts as 0).",
        },
    },
    "additionalProperties": False,
}


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@step_type(
    name="set_state",
    config_schema=SCHEMA,
    label="Set state",
    category="Data",
    description="Write the workflow's persistent state, read as {{ state.key }} by later runs.",
    icon="database",
    needs_store=True,
)
async def execute(config, context):
    values = config.get("values") or {}
    increment = config.get("increment") or {}
    if not isinstance(values, dict) or not isinstance(increment, dict):
        raise NonRetryableError("'values' and 'increment' must be objects")
    if not values and not increment:
        raise NonRetryableError("set_state needs 'values' or 'increment' to write")
    if set(values) & set(increment):
        both = ", ".join(sorted(set(values) & set(increment)))
        raise NonRetryableError(f"a key cannot be both set and incremented: {both}")
    if len(values) + len(increment) > MAX_KEYS:
        raise NonRetryableError(f"set_state writes at most {MAX_KEYS} keys at once")
    for key, amount in increment.items():
        if not _is_number(amount):
            raise NonRetryableError(f"increment of {key!r} must be a number, got {amount!r}")
    raise Effect("set_state", {"values": values, "increment": increment})
