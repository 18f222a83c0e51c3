"""The run page: what it shows in each state, and its approve/reject/cancel/retry buttons."""

import re

import pytest
from django.test import Client
from django.urls import reverse

from engine.statuses import RunStatus, StepStatus
from runs import run_page
from runs.models import Run
from runs.tests.conftest import edge, node


def approval_run(make_run, **config):
    return make_run(
        [
            node("ask", "wait_for_approval", {"prompt": "Ship it?", **config}),
            node("after", "transform", {"mapping": {"approved": "{{ ask.approved }}"}}),
        ],
        [edge("ask", "after")],
    )


@pytest.fixture
def signed_in(client, bob):
    client.force_login(bob)
    return client


@pytest.fixture
def paused(make_run, drive):
    run = drive(approval_run(make_run))
    assert run.status == RunStatus.PAUSED
    return run


@pytest.fixture
def failed(make_run, drive):
    run = drive(
        make_run(
            [node("a", "transform", {"mapping": {"x": 1}}), node("boom", "test_crash", {})],
            [edge("a", "boom")],
        )
    )
    assert run.status == RunStatus.FAILED
    return run


@pytest.fixture
def completed(make_run, drive):
    run = drive(
        make_run(
            [
                node("a", "test_probe", {"sleep": 0.05}),
                node("slow", "test_probe", {"sleep": 0.3}),
                node("fast", "test_probe", {"sleep": 0.01}),
                node("end", "transform", {"mapping": {}}),
            ],
            [edge("a", "slow"), edge("a", "fast"), edge("slow", "end"), edge("fast", "end")],
        )
    )
    assert run.status == RunStatus.COMPLETED
    return run


def page(client, run) -> str:
    response = client.get(reverse("runs:detail", args=[run.pk]))
    assert response.status_code == 200
    return response.content.decode()


def buttons(html) -> set[str]:
    return set(re.findall(r"<button[^>]*>([^<]+)</button>", html)) - {"Sign out"}


def test_it_shows_a_pending_run_with_only_a_cancel_button(signed_in, make_run):
    run = make_run([node("a", "transform", {"mapping": {}})])
    html = page(signed_in, run)
    assert 'data-run-status="pending"' in html
    assert buttons(html) == {"Cancel run"}
    assert "No steps have run." in html and "No step has started." in html
    assert f'ws-connect="/ws/runs/{run.pk}/html?after=0"' in html
    assert 'hx-ext="ws"' in html and "/static/vendor/htmx-ext-ws.js" in html


def test_it_shows_a_waiting_approval_with_approve_and_reject(signed_in, paused):
    html = page(signed_in, paused)
    assert 'data-run-status="paused"' in html
    assert buttons(html) == {"Approve", "Reject", "Cancel run"}
    assert "Ship it?" in html and 'name="comment"' in html
    assert "csrfmiddlewaretoken" in html
    assert f'ws-connect="/ws/runs/{paused.pk}/html?after={paused.last_seq}"' in html


def test_it_shows_a_failed_run_with_its_error_and_a_retry_button(signed_in, failed):
    html = page(signed_in, failed)
    assert 'data-run-status="failed"' in html
    assert buttons(html) == {"Retry from failed"}
    assert "boom" in html
    assert 'class="status status-failed">failed' in html


def test_it_shows_a_completed_run_with_timeline_steps_waterfall_and_graph(signed_in, completed):
    html = page(signed_in, completed)
    assert buttons(html) == set()
    for seq in range(1, completed.last_seq + 1):
        assert f'id="event-{seq}"' in html
    assert html.count('class="step-row"') == 4
    assert "<details><summary>output</summary>" in html
    critical = re.findall(r'class="bar-row critical" data-step-id="(\w+)"', html)
    assert critical == ["a", "slow", "end"]
    assert 'class="bar-row" data-step-id="fast"' in html
    assert html.count('class="graph-level"') == 3
    assert 'class="graph-node status-completed" data-node-id="end"' in html


def test_the_page_and_the_stream_render_the_same_partials(signed_in, paused):
    html = page(signed_in, paused)
    step = paused.steps.get()
    assert run_page.step_row(step) in html
    assert run_page.timeline_entry(paused.events.last().envelope()) in html


def test_the_graph_shows_nodes_that_have_not_started(signed_in, paused):
    html = page(signed_in, paused)
    assert 'class="graph-node status-waiting" data-node-id="ask"' in html
    assert 'class="graph-node status-not-started" data-node-id="after"' in html


def test_approving_resumes_the_run_as_the_user(signed_in, paused, drive):
    url = reverse("runs:decide", args=[paused.pk])
    response = signed_in.post(url, {"step_id": "ask", "decision": "approve", "comment": "go"})
    assert response.status_code == 302
    assert response["Location"] == reverse("runs:detail", args=[paused.pk])
    step = paused.steps.get(step_id="ask")
    assert step.resume_data == {"approved": True, "comment": "go", "decided_by": "bob"}
    run = drive(paused)
    assert run.status == RunStatus.COMPLETED
    assert run.context["ask"]["decided_by"] == "bob"


def test_rejecting_fails_the_run_with_the_comment(signed_in, paused, drive):
    url = reverse("runs:decide", args=[paused.pk])
    signed_in.post(url, {"step_id": "ask", "decision": "reject", "comment": "not today"})
    run = drive(paused)
    assert run.status == RunStatus.FAILED
    assert "not today" in run.error or "not today" in run.steps.get(step_id="ask").error


def test_a_decision_needs_approve_or_reject(signed_in, paused):
    url = reverse("runs:decide", args=[paused.pk])
    assert signed_in.post(url, {"step_id": "ask", "decision": "maybe"}).status_code == 400
    assert paused.steps.get(step_id="ask").resume_data is None


def test_cancelling_from_htmx_answers_204(signed_in, paused):
    response = signed_in.post(reverse("runs:cancel", args=[paused.pk]), HTTP_HX_REQUEST="true")
    assert response.status_code == 204
    assert Run.objects.get(pk=paused.pk).status == RunStatus.CANCELLED
    assert paused.steps.get(step_id="ask").status == StepStatus.CANCELLED


def test_retrying_a_failed_run_continues_it(signed_in, failed):
    response = signed_in.post(reverse("runs:retry", args=[failed.pk]))
    assert response.status_code == 302
    assert Run.objects.get(pk=failed.pk).status == RunStatus.RUNNING


def test_an_action_that_no_longer_applies_is_refused(signed_in, completed):
    url = reverse("runs:cancel", args=[completed.pk])
    assert signed_in.post(url, HTTP_HX_REQUEST="true").status_code == 409
    response = signed_in.post(url, follow=True)
    assert "already completed" in response.content.decode()
    assert Run.objects.get(pk=completed.pk).status == RunStatus.COMPLETED


def test_actions_need_a_sign_in(client, paused):
    for name in ["cancel", "retry", "decide"]:
        response = client.post(reverse(f"runs:{name}", args=[paused.pk]))
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")
    assert Run.objects.get(pk=paused.pk).status == RunStatus.PAUSED


def test_actions_need_the_csrf_token(bob, paused):
    client = Client(enforce_csrf_checks=True)
    client.force_login(bob)
    url = reverse("runs:cancel", args=[paused.pk])
    assert client.post(url).status_code == 403
    assert Run.objects.get(pk=paused.pk).status == RunStatus.PAUSED
    html = page(client, paused)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)
    assert client.post(url, {"csrfmiddlewaretoken": token}).status_code == 302
    assert Run.objects.get(pk=paused.pk).status == RunStatus.CANCELLED


def test_actions_are_only_posts(signed_in, paused):
    assert signed_in.get(reverse("runs:cancel", args=[paused.pk])).status_code == 405


@pytest.fixture
def waiting_event(make_run, drive):
    run = drive(
        make_run(
            [
                node("paid", "wait_for_event", {"event_name": "order.paid"}),
                node("after", "transform", {"mapping": {"order": "{{ paid.data.order_id }}"}}),
            ],
            [edge("paid", "after")],
        )
    )
    assert run.status == RunStatus.PAUSED
    return run


def test_it_shows_a_resume_form_only_for_a_waiting_event_step(signed_in, waiting_event, paused):
    html = page(signed_in, waiting_event)
    assert buttons(html) == {"Resume with event", "Cancel run"}
    assert "<code>order.paid</code>" in html and 'name="data"' in html
    assert "Resume with event" not in page(signed_in, paused)


def test_resuming_delivers_the_event_data_as_a_real_event_would(signed_in, waiting_event, drive):
    url = reverse("runs:resume", args=[waiting_event.pk])
    response = signed_in.post(url, {"step_id": "paid", "data": '{"order_id": 42}'})
    assert response.status_code == 302
    resume_data = waiting_event.steps.get(step_id="paid").resume_data
    assert resume_data["name"] == "order.paid"
    assert resume_data["data"] == {"order_id": 42}
    assert resume_data["received_at"].endswith("Z")
    run = drive(waiting_event)
    assert run.status == RunStatus.COMPLETED
    assert run.context["after"] == {"order": 42}
    assert "Resume with event" not in page(signed_in, run)


def test_resuming_needs_valid_json(signed_in, waiting_event):
    url = reverse("runs:resume", args=[waiting_event.pk])
    response = signed_in.post(url, {"step_id": "paid", "data": "{nope"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 400
    assert "not valid JSON" in response.content.decode()
    response = signed_in.post(url, {"step_id": "paid", "data": "{nope"}, follow=True)
    assert "not valid JSON" in response.content.decode()
    assert waiting_event.steps.get(step_id="paid").resume_data is None


def test_resuming_an_approval_or_a_resumed_step_as_an_event_is_refused(
    signed_in, waiting_event, paused
):
    url = reverse("runs:resume", args=[paused.pk])
    response = signed_in.post(url, {"step_id": "ask", "data": "{}"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 409
    assert paused.steps.get(step_id="ask").resume_data is None
    url = reverse("runs:resume", args=[waiting_event.pk])
    assert signed_in.post(url, {"step_id": "paid", "data": "1"}).status_code == 302
    response = signed_in.post(url, {"step_id": "paid", "data": "2"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 409
    assert waiting_event.steps.get(step_id="paid").resume_data["data"] == 1


def test_resuming_needs_a_sign_in(client, waiting_event):
    response = client.post(reverse("runs:resume", args=[waiting_event.pk]), {"step_id": "paid"})
    assert response["Location"].startswith("/accounts/login/")
    assert waiting_event.steps.get(step_id="paid").resume_data is None
