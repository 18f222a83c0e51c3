"""The "Triggers" section of the workflow page (`templates/workflows/partials/_triggers.html`).

What one version defines (`settings.triggers`) and, for the active version (the newest
published one, the only one whose triggers fire), the runtime state kept by
`triggers.sync`: the webhook URL and whether it needs a signature, each schedule with
its enabled state and next fire times (a toggle enables or disables it), and the event
subscriptions with their filters. A draft, or a version that is no longer the newest
published one, shows its triggers as a preview (no toggles: they have no schedule rows).

Below that, the editor (`TriggersEditor`): the triggers and flow-control settings of the
version an edit goes to (`triggers.editing.edit_target`: this draft, the workflow's draft,
or this frozen version, from which saving makes a draft), with their forms. A webhook
secret is never put into the page: the editor only says whether one is set.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

from engine.statuses import WorkflowStatus
from engine.validation import cron_error, timezone_error
from runs import eventlog
from triggers.editing import edit_target
from triggers.forms import FlowControlForm
from triggers.models import Schedule
from triggers.schedules import next_fire_times
from triggers.sync import active_version, triggers_of
from triggers.webhooks import webhook_url
from workflows.models import Workflow

PREVIEW_COUNT = 5


@dataclass
class ScheduleRow:
    cron: str
    timezone: str
    catch_up: bool
    input: dict
    schedule: Schedule | None = None
    """The runtime row (active version only); None for a preview."""
    fire_times: list[datetime] = field(default_factory=list)
    error: str = ""

    @property
    def enabled(self) -> bool | None:
        return self.schedule.enabled if self.schedule is not None else None

    @property
    def input_json(self) -> str:
        return json.dumps(self.input, sort_keys=True)


@dataclass
class EventRow:
    event: str
    filter: str


@dataclass
class EditorRow:
    index: int
    """Its position in settings.triggers (what the edit and remove forms post)."""
    kind: str
    trigger: dict

    @property
    def secret_set(self) -> bool:
        return bool(self.trigger.get("secret"))

    @property
    def summary(self) -> str:
        if self.kind == "schedule":
            return f"{self.trigger.get('cron', '')} ({self.trigger.get('timezone') or 'UTC'})"
        if self.kind == "event":
            condition = self.trigger.get("filter")
            return str(self.trigger.get("event", "")) + (f" where {condition}" if condition else "")
        return "secret set: requests must be signed" if self.secret_set else "no secret"


@dataclass
class TriggersEditor:
    workflow: Workflow
    """The version whose page this is."""
    target: Workflow
    """The version edits read and write (a draft, or this frozen version to copy)."""
    rows: list[EditorRow]
    flow_form: FlowControlForm
    open: dict | None = None
    """The trigger form open in the editor (a page without htmx, or one with errors): the
    context of `_trigger_form.html` (form, index, fire_times, preview_error)."""
    saved: str = ""
    error: str = ""

    @property
    def has_webhook(self) -> bool:
        return any(row.kind == "webhook" for row in self.rows)

    @property
    def note(self) -> str:
        if self.target.pk == self.workflow.pk and self.workflow.is_draft:
            return "Changes are saved to this draft. Publish it to activate them."
        if self.target.is_draft:
            return (
                f"Changes are saved to draft v{self.target.version}, not to this version. "
                "Publish the draft to activate them."
            )
        return (
            f"v{self.workflow.version} is {self.workflow.status} and frozen: saving a change "
            "makes a new draft from it. Publish the draft to activate the change."
        )


def editor_for(workflow: Workflow, flow_form: FlowControlForm | None = None) -> TriggersEditor:
    target = edit_target(workflow)
    settings = target.workflow_settings
    triggers = settings.get("triggers") if isinstance(settings.get("triggers"), list) else []
    rows = [
        EditorRow(index=index, kind=trigger["type"], trigger=trigger)
        for index, trigger in enumerate(triggers)
        if isinstance(trigger, dict) and trigger.get("type") in ("webhook", "schedule", "event")
    ]
    if flow_form is None:
        flow_form = FlowControlForm(initial=FlowControlForm.initial_from(settings))
    return TriggersEditor(workflow=workflow, target=target, rows=rows, flow_form=flow_form)


@dataclass
class TriggersPanel:
    workflow: Workflow
    active: bool
    """This version's triggers fire (it is the newest published version)."""
    webhook_url: str | None = None
    signature_required: bool = False
    schedules: list[ScheduleRow] = field(default_factory=list)
    events: list[EventRow] = field(default_factory=list)
    editor: TriggersEditor | None = None

    @property
    def any(self) -> bool:
        return bool(self.webhook_url or self.schedules or self.events)

    @property
    def inactive_reason(self) -> str:
        if self.active:
            return ""
        if self.workflow.status == WorkflowStatus.DRAFT:
            return "This is a draft: its triggers start when it is published."
        if self.workflow.status == WorkflowStatus.ARCHIVED:
            return "This version is archived: its triggers do not fire."
        return "A newer published version is active: these triggers do not fire."


def preview(cron: str, timezone: str, now: datetime) -> tuple[list[datetime], str]:
    """The next fire times of a schedule being typed, or why there are none."""
    problem = cron_error(cron)
    if problem:
        return [], f"Cron {problem}."
    problem = timezone_error(timezone)
    if problem:
        return [], f"Time zone {problem}."
    return _preview(cron.strip(), timezone, now)


def _preview(cron: str, timezone: str, now: datetime) -> tuple[list[datetime], str]:
    try:
        return next_fire_times(cron, timezone, after=now, count=PREVIEW_COUNT), ""
    except (ValueError, KeyError, TypeError, StopIteration) as exc:
        return [], f"cannot compute fire times: {exc}"


def _schedule_rows(workflow: Workflow, active: bool, now: datetime) -> list[ScheduleRow]:
    runtime = {}
    if active:
        runtime = {row.trigger_index: row for row in Schedule.objects.filter(workflow=workflow)}
    rows = []
    for index, trigger in triggers_of(workflow, "schedule"):
        cron = str(trigger.get("cron") or "").strip()
        timezone = str(trigger.get("timezone") or "UTC")
        run_input = trigger.get("input") if isinstance(trigger.get("input"), dict) else {}
        fire_times, error = _preview(cron, timezone, now)
        rows.append(
            ScheduleRow(
                cron=cron,
                timezone=timezone,
                catch_up=trigger.get("catch_up") is True,
                input=run_input,
                schedule=runtime.get(index),
                fire_times=fire_times,
                error=error,
            )
        )
    return rows


def triggers_panel(workflow: Workflow, request=None, now: datetime | None = None) -> TriggersPanel:
    """Everything the Triggers section shows for this version."""
    now = now or eventlog.db_now()
    active_one = active_version(workflow.lineage)
    active = active_one is not None and active_one.pk == workflow.pk
    hooks = triggers_of(workflow, "webhook")
    return TriggersPanel(
        workflow=workflow,
        active=active,
        webhook_url=webhook_url(workflow, request) if hooks else None,
        signature_required=any(trigger.get("secret") for _, trigger in hooks),
        schedules=_schedule_rows(workflow, active, now),
        events=[
            EventRow(event=str(trigger.get("event") or ""), filter=str(trigger.get("filter") or ""))
            for _, trigger in triggers_of(workflow, "event")
        ],
        editor=editor_for(workflow),
    )
