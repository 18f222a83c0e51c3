"""Editing a workflow's triggers and flow-control settings (the workflow page's forms).

Only the published version's triggers are active and published versions are frozen, so an
edit always lands in a draft: the version itself when it is a draft, else the workflow's
draft (made from the edited version by `Workflow.new_version` when there is none). The new
settings are checked with the definition validator (`engine.validation`) before anything is
written; only the problems of the edited item refuse the edit (a draft may hold other
unfinished things: publishing reports those). A refused edit changes nothing, not even the
new draft it would have made.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from django.db import transaction

from engine.errors import StateConflict
from engine.statuses import WorkflowStatus
from engine.validation import Problem, validate_definition
from workflows.models import Workflow

TRIGGER_TYPES = ("webhook", "schedule", "event")
FLOW_RULES = ("concurrency", "rate_limit", "throttle", "debounce", "priority")
_TRIGGER_PREFIX = re.compile(r"^Trigger \d+: ")


class EditRefused(Exception):
    """The edit does not validate; nothing was changed."""

    def __init__(self, problems: list[Problem]):
        super().__init__(problems[0].msg if problems else "the edit does not validate")
        self.problems = problems


@dataclass
class EditResult:
    draft: Workflow
    """The draft version now holding the change."""
    created: bool
    """The draft was made by this edit (the edited version was published or archived)."""


def edit_target(workflow: Workflow) -> Workflow:
    """The version an edit of `workflow`'s triggers reads and writes: itself when a draft,
    else the workflow's existing draft, else itself (a new draft will be copied from it)."""
    if workflow.is_draft:
        return workflow
    draft = Workflow.objects.filter(lineage=workflow.lineage, status=WorkflowStatus.DRAFT).first()
    return draft or workflow


Where = list[tuple[str, ...]]
"""Locations in the definition (prefixes of `Problem.loc`) whose problems refuse an edit."""


def settings_problems(settings: dict, where: Where) -> list[Problem]:
    """The validator's problems of `settings` located under one of `where` (one trigger,
    the flow-control rules)."""
    if not where:
        return []
    problems = validate_definition({"nodes": [], "edges": [], "settings": settings})
    return [p for p in problems if any(p.loc[: len(prefix)] == prefix for prefix in where)]


def problem_message(problem: Problem) -> str:
    """The message without its "Trigger N:" lead (shown next to the field)."""
    return _TRIGGER_PREFIX.sub("", problem.msg)


def _edit(
    workflow: Workflow,
    change: Callable[[dict], tuple[dict, Where]],
    created_by=None,
) -> EditResult:
    """Apply `change(settings) -> (new settings, where to validate)` to the draft."""
    with transaction.atomic():
        had_draft = edit_target(workflow).is_draft
        draft = workflow.editable_draft(created_by=created_by)
        draft = Workflow.objects.select_for_update().get(pk=draft.pk)
        settings, where = change(draft.workflow_settings)
        problems = settings_problems(settings, where)
        if problems:
            raise EditRefused(problems)  # rolls back a draft made above
        draft.replace_settings(settings)
    return EditResult(draft=draft, created=not had_draft)


def _triggers(settings: dict) -> list:
    triggers = settings.get("triggers")
    return list(triggers) if isinstance(triggers, list) else []


def _check_index(triggers: list, index: int, kind: str) -> dict:
    if not 0 <= index < len(triggers) or not isinstance(triggers[index], dict):
        raise StateConflict(f"trigger {index + 1} does not exist (any more); reload the page")
    if triggers[index].get("type") != kind:
        raise StateConflict(f"trigger {index + 1} is not a {kind} trigger; reload the page")
    return triggers[index]


def save_trigger(
    workflow: Workflow,
    kind: str,
    build: Callable[[dict | None], dict],
    index: int | None = None,
    created_by=None,
) -> EditResult:
    """Add (index None) or replace trigger `index` of type `kind`; `build(current trigger or
    None)` makes the new trigger (a webhook keeps its stored secret through it)."""

    def change(settings: dict) -> tuple[dict, Where]:
        triggers = _triggers(settings)
        if index is None:
            triggers.append(build(None))
            at = len(triggers) - 1
        else:
            triggers[index] = build(_check_index(triggers, index, kind))
            at = index
        return {**settings, "triggers": triggers}, [("settings", "triggers", str(at))]

    return _edit(workflow, change, created_by)


def remove_trigger(workflow: Workflow, kind: str, index: int, created_by=None) -> EditResult:
    def change(settings: dict) -> tuple[dict, Where]:
        triggers = _triggers(settings)
        _check_index(triggers, index, kind)
        del triggers[index]
        return {**settings, "triggers": triggers}, []  # removing cannot make a problem

    return _edit(workflow, change, created_by)


def save_flow_control(workflow: Workflow, rules: dict, created_by=None) -> EditResult:
    """Set every flow-control rule: `rules` maps each of FLOW_RULES to its value, or None
    to turn it off."""

    def change(settings: dict) -> tuple[dict, Where]:
        new = {k: v for k, v in settings.items() if k not in FLOW_RULES}
        new.update({rule: rules[rule] for rule in FLOW_RULES if rules.get(rule) is not None})
        return new, [("settings", rule) for rule in FLOW_RULES]

    return _edit(workflow, change, created_by)
