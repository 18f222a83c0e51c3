"""function_call: run a function from the function registry (engine.functions)."""

import difflib

from engine.errors import NonRetryableError, RegistryError
from engine.functions import functions, load_configured_functions
from engine.registry import step_type

SCHEMA = {
    "type": "object",
    "required": ["function"],
    "properties": {
        "function": {
            "type": "string",
            "minLength": 1,
            "description": "Name of a registered function, like 'text.slugify'.",
        },
        "args": {
            "type": "object",
            "default": {},
            "description": "Arguments for the function; values may be templates.",
        },
    },
    "additionalProperties": False,
}


def _unknown(name: str) -> NonRetryableError:
    names = functions.names()
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    if close:
        hint = "did you mean " + ", ".join(repr(n) for n in close) + "?"
    elif names:
        hint = "registered functions: " + ", ".join(names[:20])
    else:
        hint = "no functions are registered"
    return NonRetryableError(f"unknown function {name!r}: {hint}")


@step_type(
    name="function_call",
    config_schema=SCHEMA,
    label="Function",
    category="Code",
    description="Call a registered Python function with arguments.",
    icon="function",
)
async def execute(config, context):
    name = config.get("function")
    if not isinstance(name, str) or not name:
        raise NonRetryableError("function_call needs 'function', the name of a function")
    args = config.get("args")
    args = {} if args is None else args
    if not isinstance(args, dict):
        raise NonRetryableError(
            f"function_call: 'args' must be an object, not {type(args).__name__}"
        )
    entry = functions.get(name)
    if entry is None:
        try:
            load_configured_functions()  # the operator's FLOWMATRX_FUNCTIONS, imported once
        except RegistryError as exc:
            raise NonRetryableError(f"function_call: {exc}") from exc
        entry = functions.get(name)
    if entry is None:
        raise _unknown(name)
    return await entry.call(args, context)
