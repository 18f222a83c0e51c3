"""CSRF on every form and htmx request: pages carry the token (forms and hx-headers), and
a POST without it is refused."""

import json
import re

from django.test import Client
from django.urls import reverse

from engine.statuses import RunStatus
from runs.models import Run


def test_htmx_posts_need_the_token_the_page_sends_as_a_header(bob, workflow):
    run = Run.objects.create(workflow=workflow, status=RunStatus.PAUSED, created_by=bob)
    client = Client(enforce_csrf_checks=True)
    client.force_login(bob)
    page = client.get(reverse("runs:detail", args=[run.pk])).content.decode()
    headers = json.loads(re.search(r"hx-headers='([^']+)'", page).group(1))
    assert set(headers) == {"X-CSRFToken"} and headers["X-CSRFToken"]
    url = reverse("runs:cancel", args=[run.pk])
    refused = client.post(url, headers={"HX-Request": "true"})
    assert refused.status_code == 403
    run.refresh_from_db()
    assert run.status == RunStatus.PAUSED
    accepted = client.post(url, headers={"HX-Request": "true", **headers})
    assert accepted.status_code == 204
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED


def test_account_forms_need_the_token(alice, bob):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    page = client.get(reverse("accounts:users")).content.decode()
    assert page.count("csrfmiddlewaretoken") >= 3
    assert (
        client.post(reverse("accounts:user_role", args=[bob.pk]), {"role": "viewer"}).status_code
        == 403
    )
    assert (
        client.post(reverse("accounts:key_create"), {"name": "x", "scopes": ["read"]}).status_code
        == 403
    )
    assert client.post(reverse("logout")).status_code == 403
    assert not alice.api_keys.exists()
