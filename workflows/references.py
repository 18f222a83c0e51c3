"""What a node's templates can read: the builder's reference picker and template preview.

`reference_picker` lists, for one node of a (possibly unsaved) definition, the references
its templates may use: ``{{ input.<field> }}`` from the workflow's input schema, and
``{{ <step>.<field> }}`` for every step upstream of the node (the engine's graph decides
what is upstream). A step's fields come from what is known about its output without
running it (a transform's mapping keys, a registered function's output schema) and from
its output in the most recent run that has one.

`preview_context` is the context a template preview renders against: the most recent run
of any version of the workflow that has a context.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Exists, OuterRef

from engine.expressions import json_kind
from engine.functions import functions, load_configured_functions
from engine.graph import CycleError, Graph
from engine.registry import registry
from engine.statuses import StepStatus
from runs.models import Run, StepRun
from workflows.models import Workflow

MAX_FIELDS = 40
"""References listed per step at most (outputs can be large)."""
MAX_STEPS = 50
"""Upstream steps listed at most: the nearest ones (the last in execution order)."""
_DEPTH = 2  # fields listed down to step.a.b


@dataclass(frozen=True)
class Reference:
    path: str
    """``fetch.body.items``; the template is ``{{ <path> }}``."""
    hint: str = ""
    """What is known about the value: its JSON type in the last run, or a description."""

    @property
    def template(self) -> str:
        return "{{ " + self.path + " }}"


@dataclass(frozen=True)
class ReferenceGroup:
    title: str
    root: str
    """``input`` or the step id."""
    references: list[Reference] = field(default_factory=list)


def last_run(workflow: Workflow) -> Run | None:
    """The most recent run of any version of the workflow in which a step completed (its
    context holds outputs), else the most recent run at all (its context holds the input)."""
    runs = Run.objects.filter(workflow__lineage=workflow.lineage).order_by("-created_at")
    completed = StepRun.objects.filter(run=OuterRef("pk"), status=StepStatus.COMPLETED)
    return runs.filter(Exists(completed)).first() or runs.first()


def preview_context(run: Run, node_id: str) -> dict:
    """The context a template of `node_id` would see, from a past run's checkpoint."""
    context = dict(run.context) if isinstance(run.context, dict) else {}
    context.setdefault("input", run.input)
    context["run"] = {
        "id": str(run.id),
        "step_id": node_id,
        "attempt": 1,
        "idempotency_key": f"{run.id}:{node_id}",
    }
    return context


def _segment(key: str) -> str:
    return f".{key}" if key.isidentifier() else f"[{json.dumps(key)}]"


def _kind(value: Any) -> str:
    kind = json_kind(value)
    return f"list of {len(value)}" if kind == "list" else kind


def _observed(root: str, value: Any, out: dict[str, str]) -> None:
    """Paths into a step's output as it was in a run, breadth first, `_DEPTH` levels."""
    level = [(root, value)]
    for _ in range(_DEPTH):
        following = []
        for path, item in level:
            if not isinstance(item, dict):
                continue
            for key, child in item.items():
                if len(out) >= MAX_FIELDS:
                    return
                child_path = path + _segment(str(key))
                out.setdefault(child_path, _kind(child))
                following.append((child_path, child))
        level = following


def _declared(step_id: str, node: Mapping) -> dict[str, str]:
    """Fields known from the node's config without running it."""
    data = node.get("data") if isinstance(node.get("data"), Mapping) else {}
    config = data.get("config") if isinstance(data.get("config"), Mapping) else {}
    out: dict[str, str] = {}
    if node.get("type") == "transform" and isinstance(config.get("mapping"), Mapping):
        for key in config["mapping"]:
            out[step_id + _segment(str(key))] = "mapping key"
    if node.get("type") == "function_call" and isinstance(config.get("function"), str):
        load_configured_functions()
        function = functions.get(config["function"])
        properties = (function.output_schema or {}).get("properties") if function else None
        if isinstance(properties, Mapping):
            for key, prop in properties.items():
                hint = prop.get("description") or prop.get("type") or ""
                out[step_id + _segment(str(key))] = str(hint) if isinstance(prop, Mapping) else ""
    return out


def _upstream_in_order(graph: Graph, node_id: str) -> tuple[list[str], int]:
    """The nearest `MAX_STEPS` upstream steps in execution order, and how many are left out."""
    upstream = graph.upstream(node_id)
    try:
        order = graph.topological_order()
    except CycleError:
        order = list(graph.node_ids)
    ordered = [n for n in order if n in upstream]
    return ordered[-MAX_STEPS:], max(len(ordered) - MAX_STEPS, 0)


def _input_group(workflow: Workflow, run: Run | None) -> ReferenceGroup:
    refs: dict[str, str] = {}
    schema = workflow.input_schema if isinstance(workflow.input_schema, dict) else {}
    properties = schema.get("properties")
    if isinstance(properties, dict):
        for key, prop in properties.items():
            hint = ""
            if isinstance(prop, dict):
                hint = str(prop.get("description") or prop.get("type") or "")
            refs["input" + _segment(str(key))] = hint
    if run is not None and isinstance(run.input, dict):
        for key, value in run.input.items():
            refs.setdefault("input" + _segment(str(key)), _kind(value))
    references = [Reference("input", "the whole run input")]
    references += [Reference(path, hint) for path, hint in list(refs.items())[:MAX_FIELDS]]
    return ReferenceGroup("Run input", "input", references)


@dataclass(frozen=True)
class Picker:
    groups: list[ReferenceGroup]
    """The run input first, then the nearest `MAX_STEPS` upstream steps in execution order."""
    unlisted: int = 0
    """Upstream steps further away, left out."""


def reference_picker(
    workflow: Workflow, graph: Graph, node_id: str, run: Run | None = None
) -> Picker:
    """The references the templates of `node_id` (a node of `graph`, the canvas
    definition) may use, grouped by where they read."""
    groups = [_input_group(workflow, run)]
    if node_id not in graph:
        return Picker(groups)
    if graph.node_type(node_id) == "for_each":
        each = [Reference("item", "the current item"), Reference("index", "its position, from 0")]
        groups.append(ReferenceGroup("Each item (in step_config only)", "item", each))
    context = run.context if run is not None and isinstance(run.context, dict) else {}
    steps, unlisted = _upstream_in_order(graph, node_id)
    for step_id in steps:
        node = graph.nodes[step_id]
        fields = _declared(step_id, node)
        if step_id in context:
            _observed(step_id, context[step_id], fields)
        step_type = registry.get(graph.node_type(step_id))
        data = node.get("data") if isinstance(node.get("data"), Mapping) else {}
        label = data.get("label") if isinstance(data.get("label"), str) else ""
        kind = step_type.label if step_type is not None else graph.node_type(step_id)
        title = f"{label or step_id} ({kind})" if kind else (label or step_id)
        references = [Reference(step_id, "the whole output")]
        references += [Reference(path, hint) for path, hint in list(fields.items())[:MAX_FIELDS]]
        groups.append(ReferenceGroup(title, step_id, references))
    return Picker(groups, unlisted)
