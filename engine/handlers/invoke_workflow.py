"""invoke_workflow: run another published workflow as a child run (SPEC §4).

The handler checks its config and asks the store (`Effect`) to start the child: with
`wait` the store answers with a `Suspend` (the step waits durably, the parent's worker is
released, and the child's end resumes it through `resume` below); without, it answers with
the child's id at once. Cycles and the depth limit are checked by the store
(runs/composition.py), which sees the chain of parent runs.
"""

import uuid

from engine.errors import NonRetryableError, StepError
from engine.registry import Effect, step_type

SCHEMA = {
    "type": "object",
    "required": ["workflow_id"],
    "properties": {
        "workflow_id": {
            "type": "string",
            "minLength": 1,
            "description": "Id of the workflow to run (any of its versions).",
        },
        "version": {
            "type": ["integer", "null"],
            "minimum": 1,
            "default": None,
            "description": "Pin a published version number; empty runs the latest published.",
        },
        "input": {
            "type": "object",
            "default": {},
            "description": "The child run's input; values may be templates.",
        },
        "wait": {
            "type": "boolean",
            "default": True,
            "description": "Wait for the child to finish (its output becomes this step's); "
            "otherwise continue at once with its run id.",
        },
        "output_step": {
            "type": ["string", "null"],
            "default": None,
            "description": "Output the child's step of this id instead of its whole context.",
        },
    },
    "additionalProperties": False,
}


def _request(config: dict) -> dict:
    workflow_id = config.get("workflow_id")
    try:
        workflow_id = str(uuid.UUID(str(workflow_id)))
    except ValueError:
        raise NonRetryableError(f"'workflow_id' is not a workflow id: {workflow_id!r}") from None
    version = config.get("version")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
        raise NonRetryableError(f"'version' must be a whole number, got {version!r}")
    child_input = config.get("input", {})
    if not isinstance(child_input, dict):
        raise NonRetryableError(f"'input' must be an object, got {type(child_input).__name__}")
    output_step = config.get("output_step")
    if output_step is not None and not isinstance(output_step, str):
        raise NonRetryableError("'output_step' must be a step id")
    return {
        "workflow_id": workflow_id,
        "version": version,
        "input": child_input,
        "wait": config.get("wait", True) is not False,
        "output_step": output_step or None,
    }


def resume(config: dict, data: dict) -> dict:
    """The child's end, delivered by the store: its context (or `output_step`'s output)
    and its id; a failed child fails the step (retryably: a retry starts a new child),
    a cancelled one for good."""
    if not isinstance(data, dict) or "status" not in data:
        raise NonRetryableError("invoke_workflow resumes only with its child run's outcome")
    child_id = data.get("child_run_id")
    status = data["status"]
    if status == "failed":
        raise StepError(f"child run {child_id} failed: {data.get('error') or 'no error given'}")
    if status != "completed":
        raise NonRetryableError(f"child run {child_id} was {status}")
    context = data.get("context") if isinstance(data.get("context"), dict) else {}
    output_step = config.get("output_step")
    if output_step:
        if output_step not in context:
            raise NonRetryableError(f"child run {child_id} has no output of step {output_step!r}")
        chosen = context[output_step]
        output = dict(chosen) if isinstance(chosen, dict) else {"value": chosen}
    else:
        output = dict(context)
    output["child_run_id"] = child_id
    return output


@step_type(
    name="invoke_workflow",
    config_schema=SCHEMA,
    label="Run workflow",
    category="Flow",
    description="Run another published workflow as a child run and use its output.",
    icon="workflow",
    resume=resume,
    needs_store=True,
)
async def execute(config, context):
    raise Effect("invoke_workflow", _request(config))
