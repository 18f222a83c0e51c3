"""Functions for the function registry tests, loaded by dotted path (FLOWMATRX_FUNCTIONS)."""

from engine.functions import register_function


@register_function(
    "tests.sample.double",
    description="Double a number.",
    input_schema={
        "type": "object",
        "required": ["n"],
        "properties": {"n": {"type": "integer"}},
        "additionalProperties": False,
    },
    output_schema={"type": "object", "properties": {"value": {"type": "integer"}}},
)
async def double(args, context):
    return {"value": args["n"] * 2, "run_id": context.get("run", {}).get("id")}


async def sample_triple(args, context):
    """Multiply by three.

    Registered by its dotted path, under its own name."""
    return {"value": args.get("n", 0) * 3}


def sample_sync(args, context):
    return {}
