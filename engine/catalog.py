"""The catalogs the builder and the API show: step types and registered functions.

`step_catalog()` backs `GET /api/v1/catalog/steps`, `function_catalog()` backs
`GET /api/v1/catalog/functions`. Each step entry carries `node_schema`, the JSON Schema of
a node's `data` for that type (its `config` plus the fields every node has: label,
on_error, max_attempts, backoff_strategy, backoff_base, timeout_seconds, join), so one
form renderer serves every node.
"""

import engine.handlers  # noqa: F401  (registers the built-in step types)
from engine.functions import functions, load_configured_functions
from engine.policy import BACKOFF_CHOICES, JOIN_CHOICES, ON_ERROR_CHOICES
from engine.registry import StepType, registry
from engine.validation import MAX_ATTEMPTS, MAX_BACKOFF_BASE

CATEGORY_ORDER = ("Flow", "Data", "Integration", "AI", "Communication", "Code")
"""Categories in the order the builder's palette lists them; others follow, A to Z."""

NODE_FIELDS = {
    "label": {
        "type": ["string", "null"],
        "title": "Label",
        "description": "Display name; the node id when empty.",
    },
    "on_error": {
        "enum": list(ON_ERROR_CHOICES),
        "default": "fail",
        "title": "On error",
        "description": "fail: the run fails; skip: the step is skipped; continue: "
        "downstream steps run and see {'_error': message} as its output.",
    },
    "max_attempts": {
        "type": "integer",
        "minimum": 1,
        "maximum": MAX_ATTEMPTS,
        "default": 1,
        "title": "Attempts",
        "description": "Attempts including the first; retries happen on retryable errors.",
    },
    "backoff_strategy": {
        "enum": list(BACKOFF_CHOICES),
        "default": "fixed",
        "title": "Backoff",
        "description": "Wait between attempts: fixed (base), linear (base × attempt), "
        "exponential (base ^ attempt); at most 300 seconds.",
    },
    "backoff_base": {
        "type": "number",
        "minimum": 0,
        "maximum": MAX_BACKOFF_BASE,
        "default": 2.0,
        "title": "Backoff base (seconds)",
    },
    "timeout_seconds": {
        "type": ["number", "null"],
        "exclusiveMinimum": 0,
        "default": None,
        "title": "Timeout (seconds)",
        "description": "Limit for one attempt; empty for none.",
    },
    "join": {
        "enum": list(JOIN_CHOICES),
        "default": "all",
        "title": "Join",
        "description": "all: wait for every parent; any: start when the first completes.",
    },
}


def node_schema(step: StepType) -> dict:
    """JSON Schema of a node's `data` for this step type."""
    return {
        "type": "object",
        "properties": {"config": step.config_schema, **NODE_FIELDS},
        "additionalProperties": False,
    }


def _order(category: str) -> tuple:
    rank = CATEGORY_ORDER.index(category) if category in CATEGORY_ORDER else len(CATEGORY_ORDER)
    return (rank, category)


def step_catalog() -> list[dict]:
    """Every step type: type, label, category, description, icon, config_schema,
    node_schema and waits (true for types that park the run), by category then label."""
    steps = sorted(registry.all(), key=lambda s: (*_order(s.category), s.label, s.name))
    return [
        {
            **step.catalog_entry(),
            "node_schema": node_schema(step),
            "waits": step.resume is not None or step.wake is not None,
        }
        for step in steps
    ]


def steps_by_category() -> list[dict]:
    """The step catalog as `[{"category": ..., "steps": [...]}, ...]` for a palette."""
    groups: dict[str, list[dict]] = {}
    for entry in step_catalog():
        groups.setdefault(entry["category"], []).append(entry)
    return [{"category": category, "steps": steps} for category, steps in groups.items()]


def function_catalog() -> list[dict]:
    """Every registered function (after loading FLOWMATRX_FUNCTIONS): name, label,
    description, input_schema, output_schema, by name."""
    load_configured_functions()
    return [entry.catalog_entry() for entry in functions.all()]
