"""/events/: the received events, newest first, paginated, with links to the runs each
one resumed and started."""

import uuid
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from runs.events_views import PER_PAGE
from runs.models import Event
from runs.tests.conftest import node


@pytest.fixture
def signed_in(client, bob):
    client.force_login(bob)
    return client


def events_page(client, **query):
    response = client.get(reverse("events"), query)
    assert response.status_code == 200
    return response


def test_the_page_needs_a_signed_in_user(client, db):
    response = client.get(reverse("events"))
    assert response.status_code == 302 and "login" in response["Location"]


def test_an_empty_list_says_so(signed_in, db):
    assert "No events received yet." in events_page(signed_in).content.decode()


def test_events_are_listed_with_links_to_their_runs(signed_in, make_run, alice):
    started = make_run([node("a", "transform", {"mapping": {"x": 1}})])
    resumed = make_run([node("b", "transform", {"mapping": {"y": 2}})])
    gone = uuid.uuid4()
    Event.objects.create(
        name="order.created",
        event_id="evt-42",
        data={"total": 5},
        created_by=alice,
        started_run_ids=[str(started.pk), str(gone)],
        resumed_run_ids=[str(resumed.pk)],
    )
    Event.objects.create(name="ping", received_at=timezone.now() - timedelta(hours=1))
    html = events_page(signed_in).content.decode()
    assert html.index("order.created") < html.index("ping")  # newest first
    assert "<code>evt-42</code>" in html and "alice" in html
    assert f'href="{reverse("runs:detail", args=[started.pk])}"' in html
    assert f'href="{reverse("runs:detail", args=[resumed.pk])}"' in html
    assert str(gone)[:8] in html  # a deleted run is named, not linked
    assert html.count('class="run-link"') == 2
    assert 'aria-current="page">Events</a>' in html


def test_the_list_is_paginated_and_filtered_by_name(signed_in, db):
    now = timezone.now()
    Event.objects.bulk_create(
        Event(name=f"tick.{i % 2}", received_at=now - timedelta(seconds=i))
        for i in range(PER_PAGE + 5)
    )
    first = events_page(signed_in)
    assert len(first.context["rows"]) == PER_PAGE
    assert "Page 1 of 2" in first.content.decode() and "page=2" in first.content.decode()
    second = events_page(signed_in, page=2)
    assert len(second.context["rows"]) == 5
    shown = [row["event"].pk for row in first.context["rows"] + second.context["rows"]]
    assert len(set(shown)) == PER_PAGE + 5
    filtered = events_page(signed_in, name="tick.1")
    assert {row["event"].name for row in filtered.context["rows"]} == {"tick.1"}
    assert len(filtered.context["rows"]) == (PER_PAGE + 5) // 2
    assert events_page(signed_in, page="nope").context["page"].number == 1


def test_the_nav_links_to_the_events_page(signed_in, db):
    html = signed_in.get(reverse("runs:list")).content.decode()
    assert f'href="{reverse("events")}"' in html
