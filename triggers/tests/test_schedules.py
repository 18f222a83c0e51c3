"""Cron fire times (time zones, DST) and firing due schedules: catch-up policy, exactly once."""

import itertools
import threading
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection

from engine.statuses import TriggerType
from runs.models import Run
from triggers.models import Schedule
from triggers.schedules import (
    GRACE_SECONDS,
    fire_due,
    latest_fire_time,
    next_fire_times,
    seconds_until_next_fire,
    set_enabled,
)

BERLIN = ZoneInfo("Europe/Berlin")


def utc(*args):
    return datetime(*args, tzinfo=UTC)


def local(moments, zone=BERLIN):
    return [m.astimezone(zone).strftime("%m-%d %H:%M%z") for m in moments]


# ------------------------------------------------------------------------- preview


def test_the_preview_is_in_utc_for_a_schedule_in_utc():
    times = next_fire_times("*/15 * * * *", "UTC", utc(2025, 1, 1, 10, 7), 3)
    assert times == [utc(2025, 1, 1, 10, 15), utc(2025, 1, 1, 10, 30), utc(2025, 1, 1, 10, 45)]
    assert all(t.tzinfo == UTC for t in times)


def test_the_preview_is_strictly_after_the_given_time():
    assert next_fire_times("0 9 * * *", "UTC", utc(2025, 1, 1, 9), 1) == [utc(2025, 1, 2, 9)]


def test_six_fields_have_seconds_first():
    times = next_fire_times("*/20 * * * * *", "UTC", utc(2025, 1, 1, 0, 0, 0, 500), 3)
    assert times == [utc(2025, 1, 1, 0, 0, 20), utc(2025, 1, 1, 0, 0, 40), utc(2025, 1, 1, 0, 1)]


def test_a_daily_time_keeps_its_wall_clock_across_the_spring_change():
    # Europe/Berlin skips 02:00-03:00 on 2025-03-30: 02:00 does not exist that day and
    # the job runs when the clock jumps (03:00 CEST), then at 02:00 CEST again.
    times = next_fire_times("0 2 * * *", "Europe/Berlin", utc(2025, 3, 28, 12), 4)
    assert local(times) == [
        "03-29 02:00+0100",
        "03-30 03:00+0200",
        "03-31 02:00+0200",
        "04-01 02:00+0200",
    ]
    assert times == [
        utc(2025, 3, 29, 1),
        utc(2025, 3, 30, 1),
        utc(2025, 3, 31, 0),
        utc(2025, 4, 1, 0),
    ]


def test_a_daily_time_runs_once_on_the_autumn_change():
    # 02:30 happens twice on 2025-10-26 (CEST, then CET): once is enough
    times = next_fire_times("30 2 * * *", "Europe/Berlin", utc(2025, 10, 25, 12), 3)
    assert local(times) == ["10-26 02:30+0200", "10-27 02:30+0100", "10-28 02:30+0100"]


def test_a_frequent_schedule_keeps_real_time_across_dst_changes():
    spring = next_fire_times("*/30 * * * *", "Europe/Berlin", utc(2025, 3, 30, 0, 10), 3)
    assert local(spring) == ["03-30 01:30+0100", "03-30 03:00+0200", "03-30 03:30+0200"]
    assert [b - a for a, b in itertools.pairwise(spring)] == [timedelta(minutes=30)] * 2

    autumn = next_fire_times("*/30 * * * *", "Europe/Berlin", utc(2025, 10, 25, 23, 40), 6)
    assert autumn == [utc(2025, 10, 26, 0) + timedelta(minutes=30 * i) for i in range(6)]
    assert local(autumn)[:4] == [
        "10-26 02:00+0200",
        "10-26 02:30+0200",
        "10-26 02:00+0100",
        "10-26 02:30+0100",
    ]


def test_the_preview_from_inside_the_repeated_hour_misses_nothing():
    # 00:40 UTC is 02:40 CEST; the repeated 02:00 CET (01:00 UTC) is still to come
    times = next_fire_times("*/30 * * * *", "Europe/Berlin", utc(2025, 10, 26, 0, 40), 3)
    assert times == [utc(2025, 10, 26, 1), utc(2025, 10, 26, 1, 30), utc(2025, 10, 26, 2)]


def test_a_time_zone_far_from_utc():
    [first] = next_fire_times("0 0 1 1 *", "Pacific/Kiritimati", utc(2025, 6, 1), 1)
    assert first == utc(2025, 12, 31, 10)  # UTC+14


def test_the_latest_fire_time_before_now():
    cron, zone = "0 2 * * *", "Europe/Berlin"
    assert latest_fire_time(cron, zone, utc(2025, 4, 10, 12), utc(2025, 1, 1)) == utc(
        2025, 4, 10, 0
    )
    assert latest_fire_time(cron, zone, utc(2025, 4, 10, 12), utc(2025, 4, 10, 1)) is None
    # a year back through growing windows, not tick by tick
    assert latest_fire_time("0 0 1 1 *", "UTC", utc(2025, 12, 31), utc(2020, 1, 1)) == utc(
        2025, 1, 1
    )


# -------------------------------------------------------------------------- firing


@pytest.fixture
def scheduled(make_workflow):
    """scheduled(cron, **trigger) -> the Schedule of a new published workflow."""

    def make(cron, **trigger):
        workflow = make_workflow({"type": "schedule", "cron": cron, **trigger})
        return Schedule.objects.get(workflow=workflow)

    return make


def _at(schedule, when):
    Schedule.objects.filter(pk=schedule.pk).update(next_fire_at=when)
    schedule.refresh_from_db()
    return schedule


def test_a_due_schedule_fires_once_with_its_input(scheduled):
    schedule = _at(scheduled("0 * * * *", input={"report": "hourly"}), utc(2025, 5, 1, 10))
    now = utc(2025, 5, 1, 10, 0, 2)
    [run_id] = fire_due(now)
    run = Run.objects.get(pk=run_id)
    assert run.trigger_type == TriggerType.SCHEDULE
    assert run.workflow_id == schedule.workflow_id
    assert run.input == {
        "report": "hourly",
        "schedule": {"fired_at": "2025-05-01T10:00:02Z", "scheduled_for": "2025-05-01T10:00:00Z"},
    }
    schedule.refresh_from_db()
    assert schedule.next_fire_at == utc(2025, 5, 1, 11)
    assert schedule.last_fired_at == now
    assert schedule.last_run_id == run.pk
    assert fire_due(now) == []  # the same tick never fires twice
    assert fire_due(utc(2025, 5, 1, 10, 59)) == []


def test_nothing_fires_before_it_is_due(scheduled):
    _at(scheduled("0 * * * *"), utc(2025, 5, 1, 10))
    assert fire_due(utc(2025, 5, 1, 9, 59, 59)) == []
    assert Run.objects.count() == 0


def test_a_disabled_schedule_does_not_fire(scheduled):
    schedule = _at(scheduled("0 * * * *"), utc(2025, 5, 1, 10))
    set_enabled(schedule, False)
    assert fire_due(utc(2025, 5, 1, 12)) == []


def test_enabling_again_starts_from_the_next_tick(scheduled):
    schedule = _at(scheduled("0 * * * *", catch_up=True), utc(2025, 5, 1, 10))
    set_enabled(schedule, False)
    set_enabled(schedule, True, now=utc(2025, 5, 3, 7, 30))
    assert schedule.next_fire_at == utc(2025, 5, 3, 8)
    assert fire_due(utc(2025, 5, 3, 7, 59)) == []  # no catch-up for a disabled stretch


def test_skip_missed_fires_a_slightly_late_tick(scheduled):
    _at(scheduled("0 * * * *"), utc(2025, 5, 1, 10))
    [run_id] = fire_due(utc(2025, 5, 1, 10, 0, int(GRACE_SECONDS) - 1))
    assert Run.objects.get(pk=run_id).input["schedule"]["scheduled_for"] == "2025-05-01T10:00:00Z"


def test_skip_missed_skips_ticks_missed_during_downtime(scheduled):
    schedule = _at(scheduled("0 * * * *"), utc(2025, 5, 1, 10))
    # down from 09:30 to 13:20: 10:00, 11:00, 12:00 and 13:00 were missed
    assert fire_due(utc(2025, 5, 1, 13, 20)) == []
    schedule.refresh_from_db()
    assert schedule.next_fire_at == utc(2025, 5, 1, 14)
    assert schedule.last_fired_at is None
    assert len(fire_due(utc(2025, 5, 1, 14, 0, 1))) == 1


def test_skip_missed_still_fires_the_current_tick_after_downtime(scheduled):
    _at(scheduled("0 * * * *"), utc(2025, 5, 1, 10))
    # back at 13:00:30: 10-12 are skipped, 13:00 is within the grace window
    [run_id] = fire_due(utc(2025, 5, 1, 13, 0, 30))
    assert Run.objects.get(pk=run_id).input["schedule"]["scheduled_for"] == "2025-05-01T13:00:00Z"


def test_catch_up_runs_once_for_the_missed_ticks_then_continues(scheduled):
    schedule = _at(scheduled("0 * * * *", catch_up=True), utc(2025, 5, 1, 10))
    [run_id] = fire_due(utc(2025, 5, 1, 13, 20))
    marker = Run.objects.get(pk=run_id).input["schedule"]
    assert marker == {
        "fired_at": "2025-05-01T13:20:00Z",
        "scheduled_for": "2025-05-01T13:00:00Z",
        "catch_up": True,
    }
    schedule.refresh_from_db()
    assert schedule.next_fire_at == utc(2025, 5, 1, 14)
    assert fire_due(utc(2025, 5, 1, 13, 59)) == []
    assert Run.objects.count() == 1


def test_catch_up_after_a_long_downtime_is_still_one_run(scheduled):
    _at(scheduled("* * * * * *", catch_up=True), utc(2025, 5, 1, 10))
    started = fire_due(utc(2025, 6, 1, 10))  # a month of every-second ticks missed
    assert len(started) == 1


def test_the_input_cannot_forge_the_schedule_marker(scheduled):
    _at(scheduled("0 * * * *", input={"schedule": "mine", "x": 1}), utc(2025, 5, 1, 10))
    [run_id] = fire_due(utc(2025, 5, 1, 10))
    run_input = Run.objects.get(pk=run_id).input
    assert run_input["x"] == 1
    assert run_input["schedule"]["scheduled_for"] == "2025-05-01T10:00:00Z"


def test_a_schedule_whose_version_was_archived_behind_its_back_does_not_run(scheduled):
    schedule = _at(scheduled("0 * * * *"), utc(2025, 5, 1, 10))
    type(schedule.workflow).objects.filter(pk=schedule.workflow_id).update(status="archived")
    assert fire_due(utc(2025, 5, 1, 10)) == []
    schedule.refresh_from_db()
    assert schedule.next_fire_at == utc(2025, 5, 1, 11)  # advanced, not retried forever


def test_many_due_schedules_all_fire(make_workflow):
    for i in range(3):
        make_workflow({"type": "schedule", "cron": "0 * * * *"}, name=f"W{i}")
    Schedule.objects.update(next_fire_at=utc(2025, 5, 1, 10))
    assert len(fire_due(utc(2025, 5, 1, 10, 0, 30))) == 3


def test_the_worker_sleeps_until_the_next_schedule(scheduled, db):
    assert seconds_until_next_fire(5.0) == 5.0
    schedule = scheduled("0 * * * *")
    _at(schedule, datetime.now(UTC) + timedelta(seconds=2))
    assert 1.0 < seconds_until_next_fire(5.0) <= 2.0
    _at(schedule, datetime.now(UTC) - timedelta(seconds=2))
    assert seconds_until_next_fire(5.0) == 0.0
    _at(schedule, datetime.now(UTC) + timedelta(hours=2))
    assert seconds_until_next_fire(5.0) == 5.0


def test_racing_callers_fire_each_tick_once(transactional_db, make_workflow):
    if connection.vendor == "sqlite" and "memory" in str(connection.settings_dict["NAME"]):
        pytest.skip("needs a database file the threads can share")
    for i in range(5):
        make_workflow({"type": "schedule", "cron": "* * * * *"}, name=f"W{i}")
    Schedule.objects.update(next_fire_at=utc(2025, 5, 1, 10))
    barrier = threading.Barrier(4)
    started = []

    def worker():
        try:
            for second in range(0, 130, 10):  # two minutes; every caller sees each moment
                barrier.wait(30)
                started.extend(fire_due(utc(2025, 5, 1, 10, 0) + timedelta(seconds=second)))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(started) == len(set(started)) == Run.objects.count() == 5 * 3  # 10:00-10:02
    per_tick = {}
    for run in Run.objects.all():
        key = (run.workflow_id, run.input["schedule"]["scheduled_for"])
        per_tick[key] = per_tick.get(key, 0) + 1
    assert set(per_tick.values()) == {1}
