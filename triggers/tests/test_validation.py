"""`settings.triggers` in definition validation: each problem located at its field."""

import pytest

from engine.errors import InvalidDefinition
from engine.validation import validate_definition
from triggers.tests.conftest import definition


def problems(*triggers):
    return [(p.loc, p.code) for p in validate_definition(definition(*triggers))]


def where(index, field=None):
    loc = ("settings", "triggers", str(index))
    return ((*loc, field) if field else loc, "invalid_trigger")


@pytest.mark.parametrize(
    "trigger",
    [
        {"type": "webhook"},
        {"type": "webhook", "secret": "s"},
        {"type": "schedule", "cron": "0 9 * * 1-5"},
        {"type": "schedule", "cron": "*/10 * * * * *", "timezone": "Asia/Kolkata"},
        {"type": "schedule", "cron": "@daily", "timezone": "UTC", "catch_up": True, "input": {}},
        {"type": "schedule", "cron": "0 0 L * *"},
        {"type": "event", "event": "order.created", "filter": "event.data.total > 100"},
        {"type": "something_later"},
    ],
)
def test_valid_triggers_pass(trigger):
    assert problems(trigger) == []


@pytest.mark.parametrize(
    ("cron", "fragment"),
    [
        ("* * * *", "5 fields"),
        ("* * * * * * *", "5 fields"),
        ("61 * * * *", "not a valid cron expression"),
        ("0 25 * * *", "not a valid cron expression"),
        ("every day", "5 fields"),
        ("0 0 30 2 *", "never fires"),
        ("", "cron expression"),
        (None, "cron expression"),
        (5, "cron expression"),
    ],
)
def test_a_bad_cron_is_reported_on_its_field(cron, fragment):
    trigger = {"type": "schedule"} if cron is None else {"type": "schedule", "cron": cron}
    [problem] = validate_definition(definition(trigger))
    assert (problem.loc, problem.code) == where(0, "cron")
    assert fragment in problem.msg


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "CEST", "", 1, "../../etc/passwd"])
def test_a_bad_time_zone_is_reported(zone):
    [problem] = validate_definition(
        definition({"type": "schedule", "cron": "0 9 * * *", "timezone": zone})
    )
    assert (problem.loc, problem.code) == where(0, "timezone")
    assert "IANA time zone" in problem.msg


def test_every_problem_of_every_trigger_at_once():
    found = problems(
        {"type": "webhook", "secret": 42},
        {"type": "schedule", "cron": "0 9 * * *", "catch_up": "yes", "input": [1]},
        "not an object",
        {"cron": "0 9 * * *"},
        {"type": "webhook"},
        {"type": "event"},
        {"type": "event", "event": "x", "filter": "__import__('os')"},
    )
    assert found == [
        where(0, "secret"),
        where(1, "catch_up"),
        where(1, "input"),
        where(2),
        where(3, "type"),
        where(4, "type"),  # one webhook URL per workflow: one webhook trigger
        where(5, "event"),
        where(6, "filter"),
    ]


def test_triggers_must_be_a_list():
    [problem] = validate_definition(definition() | {"settings": {"triggers": {"type": "x"}}})
    assert (problem.loc, problem.code) == (("settings", "triggers"), "invalid_trigger")


def test_publishing_refuses_a_bad_schedule(make_workflow):
    with pytest.raises(InvalidDefinition) as caught:
        make_workflow({"type": "schedule", "cron": "0 0 31 2 *", "timezone": "Nowhere/City"})
    assert [p.loc[-1] for p in caught.value.problems] == ["cron", "timezone"]
