import pytest
from django.urls import reverse

from engine.statuses import EventType
from runs.models import Run, RunEvent, StepRun


@pytest.fixture
def run(workflow):
    run = Run.objects.create(workflow=workflow)
    StepRun.objects.create(run=run, step_id="a", step_type="transform")
    RunEvent.objects.create(run=run, seq=1, event_type=EventType.RUN_STARTED)
    return run


@pytest.mark.parametrize(
    "url_name", ["runs_run", "runs_steprun", "runs_runevent", "workflows_workflow"]
)
def test_the_admin_pages_load_for_a_superuser(client, alice, run, url_name):
    client.force_login(alice)
    changelist = client.get(reverse(f"admin:{url_name}_changelist"))
    assert changelist.status_code == 200
    model = {
        "runs_run": run,
        "runs_steprun": run.steps.get(),
        "runs_runevent": run.events.get(),
        "workflows_workflow": run.workflow,
    }[url_name]
    change = client.get(reverse(f"admin:{url_name}_change", args=[model.pk]))
    assert change.status_code == 200


def test_run_events_are_read_only_in_the_admin(client, alice, run):
    client.force_login(alice)
    event = run.events.get()
    response = client.post(
        reverse("admin:runs_runevent_change", args=[event.pk]), {"event_type": "run.failed"}
    )
    assert response.status_code == 403
    assert run.events.get().event_type == "run.started"


def test_pages_need_a_sign_in(client, db):
    response = client.get(reverse("dashboard"))
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


@pytest.mark.parametrize(
    ("url_name", "needs"),
    [
        ("dashboard", None),
        ("workflows:list", None),
        ("workflows:detail", "workflow"),
        ("runs:list", None),
        ("runs:detail", "run"),
    ],
)
def test_the_pages_render_with_navigation_and_local_htmx(client, bob, run, url_name, needs):
    client.force_login(bob)
    args = {None: [], "workflow": [run.workflow_id], "run": [run.pk]}[needs]
    response = client.get(reverse(url_name, args=args))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'href="/workflows/"' in html
    assert 'href="/runs/"' in html
    assert 'src="/static/vendor/htmx.min.js"' in html


def test_the_workflow_list_searches_by_name(client, bob, workflow):
    client.force_login(bob)
    assert "Greeting" in client.get("/workflows/?q=greet").content.decode()
    assert "Greeting" not in client.get("/workflows/?q=nothing").content.decode()


def test_the_health_check_answers(client, db):
    response = client.get("/healthz")
    assert response.json()["status"] == "ok"


def test_the_event_admin_lists_delivered_events_read_only(client, alice, db):
    from runs.events import deliver_event

    event = deliver_event("order.created", {"id": 7}, "evt-1")[0]
    client.force_login(alice)
    assert b"order.created" in client.get(reverse("admin:runs_event_changelist")).content
    assert client.get(reverse("admin:runs_event_change", args=[event.pk])).status_code == 200
    assert client.get(reverse("admin:runs_event_add")).status_code == 403
