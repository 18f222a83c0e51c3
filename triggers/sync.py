"""Keep a workflow's trigger rows in step with its active version.

The active version of a workflow is its newest published version (the rule
`runs.events` applies to event triggers too). Drafts never have active triggers; archiving
the active version hands them to the newest published version left, if any, and
otherwise stops them. `sync_triggers` runs whenever a version is published or archived
(`Workflow.publish` / `Workflow.archive`), in that transaction.

A schedule keeps its row, and with it its `enabled` flag and `next_fire_at`, while the
same trigger (same cron and time zone) stays from one version to the next; its input and
catch-up policy follow the new version. A new trigger starts enabled, from its next tick;
a trigger that went away is deleted.
"""

from __future__ import annotations

import logging
from collections import defaultdict

from django.db import transaction

from engine.statuses import WorkflowStatus
from runs import eventlog
from triggers.models import Schedule, WebhookEndpoint
from triggers.schedules import next_fire_time
from workflows.models import Workflow

logger = logging.getLogger("triggers.sync")


def active_version(lineage) -> Workflow | None:
    """The newest published version of a workflow: the one whose triggers are active."""
    return (
        Workflow.objects.filter(lineage=lineage, status=WorkflowStatus.PUBLISHED)
        .order_by("-version")
        .first()
    )


def triggers_of(workflow: Workflow | None, kind: str) -> list[tuple[int, dict]]:
    """(index in settings.triggers, trigger) of each trigger of type `kind`."""
    if workflow is None:
        return []
    triggers = workflow.workflow_settings.get("triggers")
    if not isinstance(triggers, list):
        return []
    return [
        (index, trigger)
        for index, trigger in enumerate(triggers)
        if isinstance(trigger, dict) and trigger.get("type") == kind
    ]


def _schedule_fields(trigger: dict) -> tuple[str, str, dict, bool]:
    cron = str(trigger.get("cron") or "").strip()
    timezone = trigger.get("timezone") or "UTC"
    run_input = trigger.get("input") if isinstance(trigger.get("input"), dict) else {}
    return cron, timezone, run_input, trigger.get("catch_up") is True


def sync_triggers(workflow: Workflow) -> list[Schedule]:
    """Bring the schedule rows (and the webhook endpoint) of `workflow`'s lineage in line
    with its active version. Returns the lineage's schedules after the change."""
    lineage = workflow.lineage
    with transaction.atomic():
        # Serializes with new_version/publish of the same workflow, and with another sync.
        list(Workflow.objects.select_for_update().filter(lineage=lineage).values_list("pk"))
        active = active_version(lineage)
        wanted = triggers_of(active, "schedule")
        existing = list(Schedule.objects.select_for_update().filter(lineage=lineage))

        reusable: dict[tuple[str, str], list[Schedule]] = defaultdict(list)
        for row in sorted(existing, key=lambda r: r.trigger_index):
            reusable[(row.cron, row.timezone)].append(row)

        now = None
        kept: list[Schedule] = []
        for index, trigger in wanted:
            cron, timezone, run_input, catch_up = _schedule_fields(trigger)
            candidates = reusable.get((cron, timezone))
            if candidates:
                row = candidates.pop(0)
                row.workflow = active
                row.trigger_index = index
                row.input = run_input
                row.catch_up = catch_up
                row.save(
                    update_fields=["workflow", "trigger_index", "input", "catch_up", "updated_at"]
                )
                kept.append(row)
                continue
            if now is None:
                now = eventlog.db_now()
            try:
                first = next_fire_time(cron, timezone, now)
            except (ValueError, KeyError) as exc:  # validated on publish; be safe anyway
                logger.warning("%s: schedule trigger %d not scheduled: %s", active, index, exc)
                continue
            kept.append(
                Schedule.objects.create(
                    lineage=lineage,
                    workflow=active,
                    trigger_index=index,
                    cron=cron,
                    timezone=timezone,
                    input=run_input,
                    catch_up=catch_up,
                    next_fire_at=first,
                )
            )
        gone = [row.pk for rows in reusable.values() for row in rows]
        if gone:
            Schedule.objects.filter(pk__in=gone).delete()

        if triggers_of(active, "webhook"):
            WebhookEndpoint.objects.get_or_create(lineage=lineage)
    return kept
