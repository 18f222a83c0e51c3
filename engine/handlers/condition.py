"""condition: evaluate a safe expression; the executor skips the losing branch."""

from engine.errors import NonRetryableError
from engine.expressions import ExpressionError, evaluate
from engine.registry import step_type

SCHEMA = {
    "type": "object",
    "required": ["expression"],
    "properties": {
        "expression": {
            "type": "string",
            "minLength": 1,
            "description": "e.g. fetch.status_code == 200 and len(fetch.body.items) > 0",
        }
    },
    "additionalProperties": False,
}


@step_type(
    name="condition",
    config_schema=SCHEMA,
    label="Condition",
    category="Flow",
    description="Take the true or the false branch depending on an expression.",
    icon="git-branch",
)
async def execute(config, context):
    expression = config.get("expression")
    if isinstance(expression, bool):
        result = expression
    elif not isinstance(expression, str):
        raise NonRetryableError("condition needs an 'expression' string")
    else:
        try:
            result = bool(evaluate(expression, context))
        except ExpressionError as exc:
            raise NonRetryableError(f"condition expression failed: {exc}") from exc
    return {"result": result, "branch": "true" if result else "false"}
