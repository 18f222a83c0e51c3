"""API keys in the UI: each user makes and revokes their own (the plaintext shown once);
admins see and revoke everyone's; to anyone else another user's key does not exist."""

import re

import pytest
from django.urls import reverse

from accounts.models import ApiKey

KEY_RE = re.compile(r"fmx_[0-9a-f]{10}_[A-Za-z0-9_-]+")


def test_a_key_is_made_with_name_scopes_and_expiry_and_shown_once(client, bob):
    client.force_login(bob)
    response = client.post(
        reverse("accounts:key_create"),
        {"name": "deploy bot", "scopes": ["read", "run"], "expires_in_days": "30"},
    )
    assert response.status_code == 201
    plaintext = KEY_RE.search(response.content.decode()).group()
    key = ApiKey.objects.get(user=bob)
    assert (key.name, key.scopes) == ("deploy bot", ["read", "run"])
    assert 29 <= (key.expires_at - key.created_at).days <= 30
    assert key.key_hash != plaintext and plaintext not in str(ApiKey.objects.values())
    listing = client.get(reverse("accounts:keys")).content.decode()
    assert key.display_prefix in listing and plaintext not in listing
    api = client.get("/api/v1/workflows", headers={"Authorization": f"Bearer {plaintext}"})
    assert api.status_code == 200
    key.refresh_from_db()
    assert key.last_used_at is not None
    assert (
        "never"
        not in client.get(reverse("accounts:keys"))
        .content.decode()
        .split(key.display_prefix)[1][:400]
    )


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"name": "x", "scopes": []}, "scopes"),
        ({"name": "x", "scopes": ["root"]}, "scopes"),
        ({"name": "", "scopes": ["read"]}, "name"),
        ({"name": "x" * 101, "scopes": ["read"]}, "name"),
        ({"name": "x", "scopes": ["read"], "expires_in_days": "-1"}, "expires_in_days"),
    ],
)
def test_a_bad_key_form_answers_field_errors_and_makes_nothing(client, bob, data, field):
    client.force_login(bob)
    response = client.post(reverse("accounts:key_create"), data)
    assert response.status_code == 400
    assert response.context["form"].errors[field]
    assert not ApiKey.objects.exists()


def test_users_revoke_their_own_keys_and_cannot_see_or_touch_others(client, alice, bob, vera):
    own, own_plain = ApiKey.create(bob, "mine")
    others, _ = ApiKey.create(vera, "hers")
    client.force_login(bob)
    listing = client.get(reverse("accounts:keys")).content.decode()
    assert own.display_prefix in listing and others.display_prefix not in listing
    assert client.post(reverse("accounts:key_revoke", args=[others.pk])).status_code == 404
    others.refresh_from_db()
    assert others.revoked_at is None
    assert client.post(reverse("accounts:key_revoke", args=[own.pk])).status_code == 302
    own.refresh_from_db()
    assert own.revoked_at is not None
    api = client.get("/api/v1/workflows", headers={"Authorization": f"Bearer {own_plain}"})
    assert api.status_code == 401


def test_admins_see_and_revoke_every_key(client, alice, vera):
    key, _ = ApiKey.create(vera, "hers")
    client.force_login(alice)
    listing = client.get(reverse("accounts:keys")).content.decode()
    assert key.display_prefix in listing and "vera" in listing
    assert client.post(reverse("accounts:key_revoke", args=[key.pk])).status_code == 302
    key.refresh_from_db()
    assert key.revoked_at is not None


def test_a_viewer_may_make_keys_but_they_only_read(client, vera, workflow):
    client.force_login(vera)
    response = client.post(
        reverse("accounts:key_create"), {"name": "all", "scopes": ["read", "run", "manage"]}
    )
    plaintext = KEY_RE.search(response.content.decode()).group()
    headers = {"Authorization": f"Bearer {plaintext}"}
    assert client.get(f"/api/v1/workflows/{workflow.pk}", headers=headers).status_code == 200
    response = client.post(f"/api/v1/workflows/{workflow.pk}/publish", headers=headers)
    assert response.status_code == 403
