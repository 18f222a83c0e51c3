"""for_each: run a sub-step once per item of a list, optionally in parallel."""

import asyncio

from engine.errors import NonRetryableError, StepError
from engine.registry import Suspend, registry, step_type
from engine.templates import TemplateError, render

MAX_ITEMS = 10_000

SCHEMA = {
    "type": "object",
    "required": ["items", "step_type"],
    "properties": {
        "items": {"description": "A list, usually a template like {{ fetch.body.items }}."},
        "step_type": {"type": "string", "description": "The step type run for each item."},
        "step_config": {
            "type": "object",
            "default": {},
            "description": "Its config; templates see `item` and `index` besides the context.",
        },
        "concurrency": {"type": "integer", "minimum": 1, "maximum": 100, "default": 1},
        "fail_fast": {
            "type": "boolean",
            "default": False,
            "description": "Fail the step at the first failing item instead of recording it.",
        },
    },
    "additionalProperties": False,
}


@step_type(
    name="for_each",
    config_schema=SCHEMA,
    label="For each",
    category="Flow",
    description="Run a step once for every item of a list.",
    icon="repeat",
    raw_config_keys=frozenset({"step_config"}),
)
async def execute(config, context):
    items = config.get("items")
    if not isinstance(items, list):
        raise NonRetryableError(f"for_each 'items' must be a list, got {type(items).__name__}")
    if len(items) > MAX_ITEMS:
        raise NonRetryableError(f"for_each takes at most {MAX_ITEMS} items, got {len(items)}")
    sub_type = registry.get(config.get("step_type") or "")
    if sub_type is None:
        raise NonRetryableError(f"for_each: unknown step_type {config.get('step_type')!r}")
    if sub_type.resume is not None or sub_type.wake is not None:
        raise NonRetryableError(f"for_each cannot run {sub_type.name!r}: it waits")
    if sub_type.needs_store:
        raise NonRetryableError(f"for_each cannot run {sub_type.name!r}: it runs as its own step")
    step_config = config.get("step_config") or {}
    concurrency = config.get("concurrency") or 1
    fail_fast = bool(config.get("fail_fast"))
    gate = asyncio.Semaphore(max(1, min(int(concurrency), 100)))

    async def run_one(index, item):
        scope = {**context, "item": item, "index": index}
        async with gate:
            try:
                return await sub_type.execute(render(step_config, scope), scope)
            except (StepError, TemplateError) as exc:
                if fail_fast:
                    raise NonRetryableError(f"item {index}: {exc}") from exc
                return {"_error": str(exc), "_index": index}
            except Suspend as exc:
                raise NonRetryableError(f"item {index}: {sub_type.name} cannot wait") from exc

    results = await asyncio.gather(*(run_one(i, item) for i, item in enumerate(items)))
    return {"items": items, "count": len(items), "results": list(results)}
