"""The "Triggers" section of the workflow page (`templates/workflows/partials/_triggers.html`).

What one version defines (`settings.triggers`) and, for the active version (the newest
published one, the only one whose triggers fire), the runtime state kept by
`triggers.sync`: the webhook URL and whether it needs a signature, each schedule with
its enabled state and next fire times (a toggle enables or disables it), and the event
subscriptions with their filters. A draft, or a version that is no longer the newest
published one, shows its triggers as a preview (no toggles: they have no schedule rows).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from engine.statuses import WorkflowStatus
from runs import eventlog
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


@dataclass
class EventRow:
    event: str
    filter: str


@dataclass
class TriggersPanel:
    workflow: Workflow
    active: bool
    """This version's triggers fire (it is the newest published version)."""
    webhook_url: str | None = None
    signature_required: bool = False
    schedules: list[ScheduleRow] = field(default_factory=list)
    events: list[EventRow] = field(default_factory=list)

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
    )
