"""The workflow page's flow-control table (runs/flowcontrol.py `overview`): per rule and
key, what runs and waits and when the next run may start, under the active version's
rules, from the runs of every version."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from engine.statuses import RunStatus, WorkflowStatus
from runs import flowcontrol, lifecycle
from runs.models import Run
from runs.tests import test_flowcontrol
from runs.worker import claim_runs

clock = test_flowcontrol.clock
flow_workflow = test_flowcontrol.flow_workflow


def rows_of(rows, rule):
    return {row["key"]: row for row in rows if row["rule"] == rule}


def test_it_counts_running_and_queued_per_concurrency_key(flow_workflow, clock):
    wf = flow_workflow({"concurrency": {"limit": 1, "key": "{{ input.c }}"}})
    clock.now = timezone.now()
    runs = [lifecycle.start_run(wf, {"c": c}) for c in ("acme", "acme", "acme", "globex")]
    Run.objects.filter(pk=runs[0].pk).update(status=RunStatus.RUNNING)
    Run.objects.filter(pk=runs[3].pk).update(status=RunStatus.COMPLETED)
    conc = rows_of(flowcontrol.overview(wf, clock.now), "concurrency")
    assert conc == {
        "acme": {"rule": "concurrency", "key": "acme", "limit": 1, "running": 1, "queued": 2}
    }


def test_rate_limit_shows_the_window_and_the_next_allowed_start(flow_workflow, clock):
    wf = flow_workflow({"rate_limit": {"limit": 2, "period_seconds": 60}})
    for at in (0, 10, 20):  # the third is cancelled: it does not count
        clock.at(at)
        lifecycle.start_run(wf, {})
    [row] = rows_of(flowcontrol.overview(wf, clock.at(30).now), "rate_limit").values()
    assert row["in_window"] == 2
    assert row["next_allowed"] == clock.at(60).now  # the first admitted run's window ends
    [row] = rows_of(flowcontrol.overview(wf, clock.at(65).now), "rate_limit").values()
    assert (row["in_window"], row["next_allowed"]) == (1, None)


def test_debounce_shows_when_the_waiting_run_starts(flow_workflow, clock):
    wf = flow_workflow({"debounce": {"period_seconds": 30, "key": "{{ input.k }}"}})
    clock.at(0)
    lifecycle.start_run(wf, {"k": "a"})
    clock.at(10)
    lifecycle.start_run(wf, {"k": "a"})
    [row] = rows_of(flowcontrol.overview(wf, clock.at(12).now), "debounce").values()
    assert (row["key"], row["queued"]) == ("a", 1)
    assert row["next_allowed"] == clock.at(40).now


@pytest.mark.parametrize("view", ["draft", "published"])
def test_the_page_shows_the_active_versions_rules_on_every_version(
    flow_workflow, client, alice, view
):
    active = flow_workflow({"concurrency": {"limit": 2, "key": "{{ input.c }}"}})
    for _ in range(3):
        lifecycle.start_run(active, {"c": "acme"})
    claim_runs("w", 10, 30)
    draft = active.new_version()
    draft.definition = {**draft.definition, "settings": {}}
    draft.save()
    client.force_login(alice)
    page = client.get(
        reverse("workflows:detail", args=[draft.pk if view == "draft" else active.pk])
    )
    html = page.content.decode()
    assert "Flow control" in html and "<code>acme</code>" in html
    source = html.split('class="muted flow-control-source">', 1)[1].split("</p>", 1)[0]
    if view == "draft":
        assert f">v{active.version}</a> (active)" in source
    else:
        assert source.startswith("As enforced by this version (active)")
    assert active.status == WorkflowStatus.PUBLISHED


def test_keys_are_capped_on_the_page(flow_workflow, clock, monkeypatch):
    monkeypatch.setattr(flowcontrol, "OVERVIEW_KEYS", 3)
    wf = flow_workflow({"throttle": {"limit": 1, "period_seconds": 600, "key": "{{ input.k }}"}})
    clock.now = timezone.now() - timedelta(seconds=5)
    for key in "abcde":
        lifecycle.start_run(wf, {"k": key})
    assert sorted(rows_of(flowcontrol.overview(wf, clock.now), "throttle")) == ["a", "b", "c"]
