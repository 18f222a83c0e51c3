"""The trigger editor in a real browser (Debian's Chromium through Playwright): the htmx
wiring of the forms. A schedule form opens in place, previews its fire times as you type,
shows a refused cron beside its field, and a saved one re-renders the Triggers section."""

import pytest

from runs.tests import test_run_page_browser as browser
from workflows.models import Workflow

CHROMIUM, off_loop = browser.CHROMIUM, browser.off_loop
server, browser_page = browser.server, browser.browser_page

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium")


@pytest.fixture
def draft(transactional_db, alice):
    return Workflow.objects.create(
        name="Editable",
        definition={
            "nodes": [{"id": "a", "type": "transform", "data": {"config": {"mapping": {}}}}],
            "edges": [],
            "settings": {},
        },
        created_by=alice,
    )


def test_adding_a_schedule_with_htmx(draft, browser_page):
    page = browser_page
    page.goto(f"/workflows/{draft.pk}/")
    page.click("#add-schedule")
    page.wait_for_selector("#trigger-form")
    assert page.url.endswith(f"/workflows/{draft.pk}/")  # opened in place, no navigation

    page.fill("#id_schedule-cron", "30 6 * * *")
    page.wait_for_selector("#schedule-preview time")  # the preview, as you type
    times = page.locator("#schedule-preview time").all_inner_texts()
    assert len(times) == 5 and all(t.endswith("06:30:00") for t in times)

    page.fill("#id_schedule-cron", "30 6 * *")
    page.wait_for_selector("#schedule-preview .preview-error")
    page.click("#trigger-form button[type=submit]")
    page.wait_for_selector("#id_schedule-cron-errors")
    assert "5 fields" in page.inner_text("#id_schedule-cron-errors")

    page.fill("#id_schedule-cron", "30 6 * * *")
    page.fill("#id_schedule-timezone", "Europe/Paris")
    page.click("#trigger-form button[type=submit]")
    page.wait_for_selector("#trigger-editor .saved")
    assert page.locator("#trigger-form").count() == 0
    assert "30 6 * * * (Europe/Paris)" in page.inner_text("#trigger-editor .trigger-rows")

    stored = off_loop(lambda: Workflow.objects.get(pk=draft.pk).workflow_settings)
    assert stored["triggers"] == [
        {
            "type": "schedule",
            "cron": "30 6 * * *",
            "timezone": "Europe/Paris",
            "input": {},
            "catch_up": False,
        }
    ]


def test_flow_control_errors_show_beside_the_field(draft, browser_page):
    page = browser_page
    page.goto(f"/workflows/{draft.pk}/")
    page.fill("#id_rate_limit_limit", "5")
    page.click("#flow-control-form button[type=submit]")
    page.wait_for_selector("#id_rate_limit_period_seconds-errors")
    page.fill("#id_rate_limit_period_seconds", "60")
    page.click("#flow-control-form button[type=submit]")
    page.wait_for_selector("#trigger-editor .saved")
    stored = off_loop(lambda: Workflow.objects.get(pk=draft.pk).workflow_settings)
    assert stored["rate_limit"] == {"limit": 5, "period_seconds": 60}
