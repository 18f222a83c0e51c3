"""The dashboard: counts per status, recent runs, recent failures, and the runs waiting
for an approval with a link to decide on the run page."""

import pytest
from django.urls import reverse
from django.utils import timezone

from engine.statuses import RunStatus, StepStatus, WaitingFor
from runs.models import Run, StepRun


@pytest.fixture
def signed_in(client, bob):
    client.force_login(bob)
    return client


def make_run(workflow, status, **fields):
    return Run.objects.create(workflow=workflow, status=status, **fields)


def waiting_step(run, step_id="ask", waiting_for=WaitingFor.APPROVAL, **fields):
    return StepRun.objects.create(
        run=run,
        step_id=step_id,
        step_type="wait_for_approval",
        status=StepStatus.WAITING,
        waiting_for=waiting_for,
        input={"prompt": "Ship it?"},
        started_at=timezone.now(),
        **fields,
    )


def test_it_counts_runs_per_status(signed_in, workflow):
    for status in [RunStatus.COMPLETED, RunStatus.COMPLETED, RunStatus.FAILED]:
        make_run(workflow, status)
    response = signed_in.get(reverse("dashboard"))
    counts = response.context["counts"]
    assert counts[RunStatus.COMPLETED] == 2
    assert counts[RunStatus.FAILED] == 1
    assert counts[RunStatus.PENDING] == 0
    html = response.content.decode()
    assert 'href="/runs/?status=failed"><strong>1</strong> failed' in html


def test_it_lists_recent_runs_and_recent_failures(signed_in, workflow):
    done = make_run(workflow, RunStatus.COMPLETED)
    failed = make_run(workflow, RunStatus.FAILED, error="boom")
    response = signed_in.get(reverse("dashboard"))
    assert list(response.context["recent_runs"]) == [failed, done]
    assert list(response.context["failed_runs"]) == [failed]


def test_it_lists_waiting_approvals_with_a_link_to_the_run_page(signed_in, workflow):
    run = make_run(workflow, RunStatus.PAUSED)
    waiting_step(run)
    response = signed_in.get(reverse("dashboard"))
    assert [s.run_id for s in response.context["approvals"]] == [run.pk]
    html = response.content.decode()
    link = reverse("runs:detail", args=[run.pk]) + "#run-actions"
    assert f'<a href="{link}">Approve or reject</a>' in html
    assert "Ship it?" in html


def test_it_leaves_out_decided_approvals_event_waits_and_finished_runs(signed_in, workflow):
    waiting_step(make_run(workflow, RunStatus.PAUSED), resume_data={"approved": True})
    waiting_step(make_run(workflow, RunStatus.PAUSED), waiting_for=WaitingFor.EVENT)
    waiting_step(make_run(workflow, RunStatus.CANCELLED))
    response = signed_in.get(reverse("dashboard"))
    assert list(response.context["approvals"]) == []
    assert "Nothing is waiting for an approval." in response.content.decode()


def test_the_dashboard_queries_do_not_grow_with_the_rows(
    signed_in, workflow, django_assert_max_num_queries
):
    for _ in range(5):
        waiting_step(make_run(workflow, RunStatus.PAUSED))
        make_run(workflow, RunStatus.FAILED)
    with django_assert_max_num_queries(12):
        assert signed_in.get(reverse("dashboard")).status_code == 200
