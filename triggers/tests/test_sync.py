"""Schedules follow the newest published version; drafts never have active triggers."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from engine.statuses import WorkflowStatus
from triggers.models import Schedule, WebhookEndpoint
from triggers.schedules import fire_due, set_enabled
from triggers.sync import sync_triggers
from triggers.tests.conftest import next_version

NINE = {"type": "schedule", "cron": "0 9 * * *", "timezone": "Europe/Berlin"}
HOURLY = {"type": "schedule", "cron": "0 * * * *"}


def test_a_draft_has_no_schedule(make_workflow):
    make_workflow(NINE, publish=False)
    assert Schedule.objects.count() == 0


def test_publishing_creates_the_schedules_from_their_next_tick(make_workflow):
    before = datetime.now(UTC)
    workflow = make_workflow(NINE, {"type": "webhook"}, HOURLY)
    nine, hourly = Schedule.objects.order_by("trigger_index")
    assert (nine.workflow, nine.trigger_index, nine.cron, nine.timezone) == (
        workflow,
        0,
        "0 9 * * *",
        "Europe/Berlin",
    )
    assert (hourly.trigger_index, hourly.timezone, hourly.input, hourly.catch_up) == (
        2,
        "UTC",
        {},
        False,
    )
    assert nine.enabled and hourly.enabled
    assert before < hourly.next_fire_at <= before + timedelta(hours=1)
    assert hourly.next_fire_at.minute == 0 and hourly.next_fire_at.second == 0
    local = nine.next_fire_at.astimezone(ZoneInfo("Europe/Berlin"))
    assert (local.hour, local.minute) == (9, 0)
    assert WebhookEndpoint.objects.filter(lineage=workflow.lineage).exists()


def test_a_new_version_moves_the_schedules_and_keeps_state_of_unchanged_triggers(make_workflow):
    v1 = make_workflow(NINE, HOURLY)
    nine = Schedule.objects.get(cron="0 9 * * *")
    hourly = Schedule.objects.get(cron="0 * * * *")
    set_enabled(nine, False)
    Schedule.objects.filter(pk=hourly.pk).update(next_fire_at=datetime(2030, 1, 1, 5, tzinfo=UTC))

    draft = next_version(
        v1,
        {"type": "webhook"},
        {**NINE, "input": {"report": "daily"}, "catch_up": True},
        {"type": "schedule", "cron": "*/5 * * * *"},
        publish=False,
    )
    # a draft changes nothing
    assert set(Schedule.objects.values_list("workflow", flat=True)) == {v1.pk}
    draft.publish()

    rows = {row.cron: row for row in Schedule.objects.all()}
    assert set(rows) == {"0 9 * * *", "*/5 * * * *"}  # the hourly trigger went away
    kept = rows["0 9 * * *"]
    assert kept.pk == nine.pk
    assert (kept.workflow_id, kept.trigger_index) == (draft.pk, 1)
    assert kept.enabled is False  # the operator's choice stays
    assert (kept.input, kept.catch_up) == ({"report": "daily"}, True)
    assert rows["*/5 * * * *"].workflow_id == draft.pk
    assert rows["*/5 * * * *"].enabled


def test_the_same_cron_in_another_time_zone_is_a_new_schedule(make_workflow):
    v1 = make_workflow(NINE)
    first = Schedule.objects.get()
    next_version(v1, {**NINE, "timezone": "America/New_York"})
    second = Schedule.objects.get()
    assert second.pk != first.pk
    assert second.timezone == "America/New_York"


def test_archiving_the_published_version_stops_its_schedules(make_workflow):
    workflow = make_workflow(NINE, HOURLY)
    assert Schedule.objects.count() == 2
    workflow.archive()
    assert Schedule.objects.count() == 0
    assert fire_due(datetime(2040, 1, 1, tzinfo=UTC)) == []


def test_archiving_the_newest_hands_the_triggers_back_to_the_previous_published(make_workflow):
    v1 = make_workflow(NINE)
    v2 = next_version(v1, HOURLY)
    assert Schedule.objects.get().workflow_id == v2.pk
    v2.archive()
    # v1 is still published: it is the newest published version again (as for events)
    row = Schedule.objects.get()
    assert (row.workflow_id, row.cron) == (v1.pk, "0 9 * * *")
    v1.archive()
    assert Schedule.objects.count() == 0


def test_publishing_a_version_without_schedules_removes_them(make_workflow):
    v1 = make_workflow(NINE)
    next_version(v1, {"type": "webhook"})
    assert Schedule.objects.count() == 0


def test_sync_is_idempotent(make_workflow):
    workflow = make_workflow(NINE, HOURLY)
    before = list(Schedule.objects.order_by("pk").values("pk", "next_fire_at", "workflow"))
    sync_triggers(workflow)
    sync_triggers(workflow)
    after = list(Schedule.objects.order_by("pk").values("pk", "next_fire_at", "workflow"))
    assert after == before


def test_fires_run_the_version_the_schedule_follows(make_workflow):
    v1 = make_workflow(HOURLY)
    v2 = next_version(v1, HOURLY)
    row = Schedule.objects.get()
    [run_id] = fire_due(row.next_fire_at)
    assert v2.runs.filter(pk=run_id).exists()
    assert v2.status == WorkflowStatus.PUBLISHED
