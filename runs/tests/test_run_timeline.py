"""The run page's timeline is capped to the newest events; "load earlier" pages back by seq."""

import re

import pytest
from django.db import transaction
from django.urls import reverse

from engine.events import NewEvent
from engine.statuses import EventType
from runs import eventlog
from runs.run_page import TIMELINE_PAGE
from runs.tests.conftest import node


@pytest.fixture
def signed_in(client, bob):
    client.force_login(bob)
    return client


@pytest.fixture
def long_run(make_run):
    """A run with 450 events (seq 1..450)."""
    run = make_run([node("a", "transform", {"mapping": {}})])
    with transaction.atomic():
        eventlog.append(
            run.pk,
            [
                NewEvent(EventType.CONTEXT_UPDATED, {"step_id": "a", "keys": [str(i)]}, "a")
                for i in range(450)
            ],
        )
    return run


def seqs(html: str) -> list[int]:
    return [int(s) for s in re.findall(r'<li id="event-\d+" data-seq="(\d+)"', html)]


def earlier_button(html: str) -> str | None:
    match = re.search(r'hx-get="([^"]+)" hx-target="#timeline-earlier"', html)
    return match.group(1) if match else None


def test_the_page_shows_the_newest_events_and_pages_back_to_the_first(signed_in, long_run):
    assert TIMELINE_PAGE == 200
    html = signed_in.get(reverse("runs:detail", args=[long_run.pk])).content.decode()
    assert seqs(html) == list(range(251, 451))
    assert f'ws-connect="/ws/runs/{long_run.pk}/html?after=450"' in html
    url = earlier_button(html)
    assert url == reverse("runs:timeline", args=[long_run.pk]) + "?before=251"
    assert "Load 250 earlier events" in html

    html = signed_in.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert seqs(html) == list(range(51, 251))
    url = earlier_button(html)
    assert url.endswith("?before=51") and "Load 50 earlier events" in html

    html = signed_in.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert seqs(html) == list(range(1, 51))
    assert earlier_button(html) is None
    assert "<html" not in html  # a fragment, the same partial the page includes


def test_a_short_run_shows_every_event_without_a_button(signed_in, make_run):
    run = make_run([node("a", "transform", {"mapping": {}})])
    with transaction.atomic():
        eventlog.append(run.pk, [NewEvent(EventType.RUN_STARTED, {"status": "running"})])
    html = signed_in.get(reverse("runs:detail", args=[run.pk])).content.decode()
    assert seqs(html) == [1]
    assert earlier_button(html) is None and 'id="timeline-earlier"' not in html


def test_before_beyond_the_end_is_the_newest_page(signed_in, long_run):
    url = reverse("runs:timeline", args=[long_run.pk])
    html = signed_in.get(f"{url}?before=999999999999").content.decode()
    assert seqs(html) == list(range(251, 451))


@pytest.mark.parametrize("before", ["", "0", "-3", "abc", "1.5", "²", "9" * 40])
def test_a_bad_before_is_refused(signed_in, long_run, before):
    url = reverse("runs:timeline", args=[long_run.pk])
    response = signed_in.get(url, {"before": before})
    assert response.status_code == 400
    assert "before must be a positive integer" in response.content.decode()


def test_the_timeline_needs_a_sign_in(client, long_run):
    response = client.get(reverse("runs:timeline", args=[long_run.pk]), {"before": 10})
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_an_unknown_run_has_no_timeline(signed_in):
    unknown = reverse("runs:timeline", args=["00000000-0000-0000-0000-000000000000"])
    assert signed_in.get(unknown, {"before": 10}).status_code == 404
