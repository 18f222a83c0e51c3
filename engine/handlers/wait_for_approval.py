"""wait_for_approval: pause the run until a person approves or rejects."""

from engine.errors import NonRetryableError
from engine.registry import Suspend, step_type
from engine.statuses import WaitingFor

SCHEMA = {
    "type": "object",
    "properties": {
        "prompt": {"type": "string", "description": "What the approver is asked."},
        "timeout_seconds": {
            "type": ["number", "null"],
            "exclusiveMinimum": 0,
            "description": "Fail the step if nobody decides in time.",
        },
        "on_reject": {
            "type": "string",
            "enum": ["fail", "continue"],
            "default": "fail",
            "description": "fail: a rejection fails the step; continue: it completes with "
            "approved=false.",
        },
    },
    "additionalProperties": False,
}


def resume(config, data):
    if not isinstance(data, dict) or not isinstance(data.get("approved"), bool):
        raise NonRetryableError("an approval needs data {'approved': true|false, 'comment'?}")
    output = {
        "approved": data["approved"],
        "comment": str(data.get("comment") or ""),
        "decided_by": data.get("decided_by"),
    }
    if not output["approved"] and config.get("on_reject", "fail") != "continue":
        comment = f": {output['comment']}" if output["comment"] else ""
        raise NonRetryableError(f"rejected by {output['decided_by'] or 'an approver'}{comment}")
    return output


def wake(config):
    raise NonRetryableError(f"no decision within {config.get('timeout_seconds')} seconds")


@step_type(
    name="wait_for_approval",
    config_schema=SCHEMA,
    label="Wait for approval",
    category="Flow",
    description="Pause until a person approves or rejects, with a comment.",
    icon="user-check",
    resume=resume,
    wake=wake,
)
async def execute(config, context):
    timeout = config.get("timeout_seconds")
    return_timeout = float(timeout) if isinstance(timeout, int | float) and timeout > 0 else None
    raise Suspend(WaitingFor.APPROVAL, seconds=return_timeout, label=config.get("prompt", ""))
