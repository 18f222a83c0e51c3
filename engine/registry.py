"""The step-type registry: one entry per step type, checked when it registers.

A step type is a pure async handler `execute(config, context) -> dict` (no database
writes, no events), the JSON Schema of its config (the single source for validation, the
API and the builder's forms) and catalog metadata. Handlers that wait durably raise
`Suspend`; the executor parks the step and later turns the resume data (or the timer
firing) into the step's output with `resume` / `wake`.
"""

import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from engine.errors import RegistryError
from engine.statuses import WaitingFor

Handler = Callable[[dict, Mapping[str, Any]], Awaitable[dict]]

REDACTED = "********"
"""What a stored secret shows as wherever it is read back (step runs, the API)."""


class Suspend(Exception):
    """Raised by a handler to park its step durably until resumed or woken by time."""

    def __init__(
        self,
        waiting_for: WaitingFor,
        *,
        seconds: float | None = None,
        label: str = "",
        output: dict | None = None,
        child: Any = None,
    ):
        super().__init__(f"waiting for {waiting_for}")
        self.waiting_for = WaitingFor(waiting_for)
        self.seconds = seconds
        """For a delay: when to wake. For an approval or an event: the timeout, if any."""
        self.label = label
        self.output = output
        """Stored on the waiting step row (an invoke's `child_run_id`), replaced by the
        step's real output when it resumes."""
        self.child = child
        """An `engine.store.ChildStart` the store creates with the wait (invoke_workflow)."""


class Effect(Exception):
    """Raised by a pure handler whose work needs the database: start a run, deliver an
    event, write the workflow state. The executor hands `kind` and `request` to the
    store (`Store.perform`), whose answer becomes the step's output."""

    def __init__(self, kind: str, request: dict):
        super().__init__(f"effect {kind}")
        self.kind = kind
        self.request = request


@dataclass(frozen=True)
class StepType:
    name: str
    execute: Handler
    config_schema: dict
    label: str
    category: str
    description: str
    icon: str = "box"
    raw_config_keys: frozenset[str] = frozenset()
    """Config keys the executor must not render: the handler renders them itself (for
    example for_each's `step_config`, rendered once per item)."""
    resume: Callable[[dict, dict], dict] | None = None
    """(resolved config, resume data) -> output, for steps that wait for a person or an
    event; may raise StepError (a rejected approval)."""
    wake: Callable[[dict], dict] | None = None
    """(resolved config) -> output when the step's timer fires without resume data; may
    raise StepError (an approval that timed out)."""
    needs_store: bool = False
    """The handler raises `Effect` (its work is done by the store), so it only runs as a
    node of its own: for_each cannot run it once per item."""
    extra: dict = field(default_factory=dict)

    @cached_property  # read at every step start; the schema does not change
    def secret_config_keys(self) -> frozenset[str]:
        """Config keys marked `writeOnly` in the schema (a webhook's signing secret): the
        handler gets them, but they are never stored with the step run."""
        properties = self.config_schema.get("properties") or {}
        return frozenset(
            k for k, v in properties.items() if isinstance(v, dict) and v.get("writeOnly")
        )

    def redact(self, config: dict) -> dict:
        secret = self.secret_config_keys
        if not secret or not isinstance(config, dict):
            return config
        return {k: (REDACTED if k in secret and v else v) for k, v in config.items()}

    def catalog_entry(self) -> dict:
        return {
            "type": self.name,
            "label": self.label,
            "category": self.category,
            "description": self.description,
            "icon": self.icon,
            "config_schema": self.config_schema,
        }


class Registry:
    def __init__(self):
        self._types: dict[str, StepType] = {}

    def register(self, step_type: StepType) -> StepType:
        name = step_type.name
        if not isinstance(name, str) or not name.isidentifier():
            raise RegistryError(f"step type name {name!r} must be an identifier")
        if name in self._types:
            raise RegistryError(f"step type {name!r} is already registered")
        if not inspect.iscoroutinefunction(step_type.execute):
            raise RegistryError(f"step type {name!r}: execute must be an async function")
        params = list(inspect.signature(step_type.execute).parameters)
        if len(params) != 2:
            raise RegistryError(f"step type {name!r}: execute must take (config, context)")
        schema = step_type.config_schema
        if not isinstance(schema, dict) or schema.get("type") != "object":
            raise RegistryError(f"step type {name!r}: config_schema must be an object schema")
        self._types[name] = step_type
        return step_type

    def get(self, name: str) -> StepType | None:
        return self._types.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._types

    def all(self) -> list[StepType]:
        return sorted(self._types.values(), key=lambda t: (t.category, t.name))


registry = Registry()


def step_type(**kwargs) -> Callable[[Handler], Handler]:
    """Decorator: register the decorated handler as a step type in the global registry."""

    def decorate(execute: Handler) -> Handler:
        registry.register(StepType(execute=execute, **kwargs))
        return execute

    return decorate
