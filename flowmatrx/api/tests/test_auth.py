"""Who may call: API keys (hashed, scoped, revocable, expiring) and the browser session."""

from datetime import timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from accounts.models import ApiKey, hash_key
from flowmatrx.api import api as ninja_api
from flowmatrx.api.tests.conftest import ApiClient, assert_error, counts, new_key

ANY = "3f1c0c8e-0000-4000-8000-000000000000"  # fixed: xdist workers must agree on test ids
ENDPOINTS = [
    ("GET", "/workflows"),
    ("POST", "/workflows"),
    ("GET", f"/workflows/{ANY}"),
    ("PUT", f"/workflows/{ANY}"),
    ("DELETE", f"/workflows/{ANY}"),
    ("POST", f"/workflows/{ANY}/publish"),
    ("POST", f"/workflows/{ANY}/validate"),
    ("POST", f"/workflows/{ANY}/duplicate"),
    ("POST", f"/workflows/{ANY}/run"),
    ("POST", f"/workflows/{ANY}/new_version"),
    ("POST", f"/workflows/{ANY}/archive"),
    ("GET", f"/workflows/{ANY}/versions"),
    ("GET", f"/workflows/{ANY}/diff/{ANY}"),
    ("GET", f"/workflows/{ANY}/state"),
    ("GET", "/runs"),
    ("GET", f"/runs/{ANY}"),
    ("GET", f"/runs/{ANY}/steps"),
    ("GET", f"/runs/{ANY}/events"),
    ("POST", f"/runs/{ANY}/resume"),
    ("POST", f"/runs/{ANY}/cancel"),
    ("POST", f"/runs/{ANY}/retry"),
    ("POST", "/events"),
    ("GET", "/events"),
    ("GET", "/catalog/steps"),
    ("GET", "/catalog/functions"),
]


def test_the_endpoint_list_covers_the_openapi_document():
    documented = {
        (method.upper(), path.removeprefix("/api/v1").replace("{workflow_id}", ANY))
        for path, operations in ninja_api.get_openapi_schema()["paths"].items()
        for method in operations
    }
    documented = {(m, p.replace("{run_id}", ANY).replace("{other_id}", ANY)) for m, p in documented}
    assert documented == set(ENDPOINTS)


@pytest.mark.parametrize(("method", "path"), ENDPOINTS, ids=[f"{m} {p}" for m, p in ENDPOINTS])
def test_every_endpoint_answers_401_without_credentials(anonymous, method, path, db):
    before = counts()
    response = anonymous.request(method, path, {"name": "x"} if method != "GET" else None)
    assert_error(response, 401, loc=["header", "Authorization"])
    assert response.json()["errors"][0]["msg"].startswith("Authentication required")
    assert counts() == before


@pytest.mark.parametrize(
    "header",
    [
        "Bearer fmx_0123456789_" + "a" * 43,  # well-formed, unknown
        "Bearer nonsense",
        "Bearer ",
        "Basic YWxpY2U6cGFzc3dvcmQ=",
        "fmx_0123456789_" + "a" * 43,
    ],
)
def test_a_wrong_key_or_scheme_is_401(client, db, header):
    response = client.get("/api/v1/workflows", headers={"Authorization": header})
    assert_error(response, 401, loc=["header", "Authorization"])


def test_a_valid_key_works_and_a_tampered_one_does_not(client, alice):
    key = new_key(alice)
    assert ApiClient(client, key).get("/workflows").status_code == 200
    tampered = key[:-1] + ("A" if key[-1] != "A" else "B")
    assert_error(ApiClient(client, tampered).get("/workflows"), 401)


def test_revoked_expired_and_inactive_users_keys_are_401(client, alice, bob):
    revoked, revoked_key = ApiKey.create(alice, "revoked")
    revoked.revoke()
    expired_key = ApiKey.create(alice, "old", expires_at=timezone.now() - timedelta(seconds=1))[1]
    bob_key = new_key(bob)
    bob.is_active = False
    bob.save()
    for key in (revoked_key, expired_key, bob_key):
        assert_error(ApiClient(client, key).get("/workflows"), 401)


def test_keys_are_stored_hashed_with_a_public_prefix(alice):
    key, plaintext = ApiKey.create(alice, "ci", ["read"])
    assert plaintext.startswith(f"fmx_{key.prefix}_") and len(plaintext) > 50
    assert key.key_hash == hash_key(plaintext) and plaintext not in str(key.__dict__)
    assert ApiKey.authenticate(plaintext) == key
    assert ApiKey.authenticate(plaintext + "x") is None
    assert ApiKey.authenticate(f"fmx_{key.prefix}_\x00") is None


def test_last_used_at_is_written_at_most_once_a_minute(client, alice):
    key, plaintext = ApiKey.create(alice, "ci")
    api = ApiClient(client, plaintext)
    with time_machine.travel("2030-01-01 12:00:00Z", tick=False):
        api.get("/workflows")
        key.refresh_from_db()
        first = key.last_used_at
        assert first is not None
    with time_machine.travel("2030-01-01 12:00:30Z", tick=False):
        api.get("/workflows")
        key.refresh_from_db()
        assert key.last_used_at == first
    with time_machine.travel("2030-01-01 12:01:30Z", tick=False):
        api.get("/workflows")
        key.refresh_from_db()
        assert key.last_used_at > first


def test_a_read_key_reads_but_cannot_change_anything(api_as, alice, workflow):
    api = api_as(alice, ["read"])
    assert api.get("/workflows").status_code == 200
    assert api.get(f"/workflows/{workflow.id}").status_code == 200
    before = counts()
    assert_error(api.post("/workflows", {"name": "x"}), 403, contains="'manage' scope")
    assert_error(api.post(f"/workflows/{workflow.id}/run", {}), 403, contains="'run' scope")
    assert_error(api.post("/events", {"name": "x"}), 403)
    assert_error(api.delete(f"/workflows/{workflow.id}"), 403)
    assert counts() == before


def test_a_run_key_runs_but_neither_reads_nor_edits(api_as, alice, workflow):
    api = api_as(alice, ["run"])
    assert api.post(f"/workflows/{workflow.id}/run", {}).status_code == 201
    assert api.post("/events", {"name": "x"}).status_code == 201
    assert_error(api.get("/runs"), 403, contains="'read' scope")
    assert_error(api.put(f"/workflows/{workflow.id}", {"name": "y"}), 403)


def test_a_manage_key_edits(api_as, alice, workflow):
    api = api_as(alice, ["manage"])
    assert api.put(f"/workflows/{workflow.id}", {"name": "y"}).status_code == 200
    assert api.post(f"/workflows/{workflow.id}/publish").status_code == 200
    assert_error(api.post(f"/workflows/{workflow.id}/run", {}), 403)


def test_the_browser_session_works_and_needs_the_csrf_token_to_change_things(alice, workflow):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(alice)
    assert browser.get("/api/v1/workflows").status_code == 200

    before = counts()
    refused = browser.post("/api/v1/workflows", {"name": "x"}, content_type="application/json")
    assert_error(refused, 403, loc=["header", "X-CSRFToken"])
    assert counts() == before

    browser.get("/api/v1/docs")  # any page sets the CSRF cookie
    token = browser.cookies["csrftoken"].value
    created = browser.post(
        "/api/v1/workflows",
        {"name": "x"},
        content_type="application/json",
        headers={"X-CSRFToken": token},
    )
    assert created.status_code == 201
    assert created.json()["created_by"] == "alice"


def test_without_a_session_an_unsafe_request_is_401_not_a_csrf_failure(db):
    response = Client(enforce_csrf_checks=True).post(
        "/api/v1/workflows", {"name": "x"}, content_type="application/json"
    )
    assert_error(response, 401)


def test_a_run_started_with_a_key_is_an_api_run_and_from_the_browser_manual(
    client, api, alice, workflow
):
    assert api.post(f"/workflows/{workflow.id}/run", {}).json()["trigger_type"] == "api"
    client.force_login(alice)
    response = client.post(
        f"/api/v1/workflows/{workflow.id}/run", {}, content_type="application/json"
    )
    assert response.json()["trigger_type"] == "manual"


def test_keys_are_listed_and_revoked_in_the_admin_but_never_added_there(client, alice):
    key, _ = ApiKey.create(alice, "ci")
    client.force_login(alice)
    assert client.get("/admin/accounts/apikey/").status_code == 200
    assert client.get(f"/admin/accounts/apikey/{key.pk}/change/").status_code == 200
    assert client.get("/admin/accounts/apikey/add/").status_code == 403
    response = client.post(
        "/admin/accounts/apikey/", {"action": "revoke", "_selected_action": [key.pk]}
    )
    assert response.status_code == 302
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert client.get("/admin/accounts/idempotencyrecord/").status_code == 200


def test_create_api_key_prints_a_working_key_once(client, alice):
    out, err = StringIO(), StringIO()
    call_command(
        "create_api_key", "alice", "--name", "ci", "--scopes", "read,run", stdout=out, stderr=err
    )
    plaintext = out.getvalue().strip()
    key = ApiKey.objects.get()
    assert (key.name, key.scopes, key.expires_at) == ("ci", ["read", "run"], None)
    assert "cannot be shown again" in err.getvalue() and plaintext not in err.getvalue()
    assert ApiClient(client, plaintext).get("/workflows").status_code == 200


def test_create_api_key_defaults_to_every_scope_and_can_expire(alice):
    call_command(
        "create_api_key", "alice", "--expires-days", "7", stdout=StringIO(), stderr=StringIO()
    )
    key = ApiKey.objects.get()
    assert key.scopes == ["read", "run", "manage"]
    assert timedelta(days=6) < key.expires_at - timezone.now() <= timedelta(days=7)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nobody"], "no user named 'nobody'"),
        (["alice", "--scopes", "read,admin"], "scopes must be some of"),
        (["alice", "--expires-days", "0"], "positive"),
    ],
)
def test_create_api_key_refuses_bad_arguments(alice, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("create_api_key", *args, stdout=StringIO(), stderr=StringIO())
    assert not ApiKey.objects.exists()


@pytest.mark.parametrize("form", ["full", "display_prefix", "prefix"])
def test_revoke_api_key_by_key_or_prefix(client, alice, form):
    key, plaintext = ApiKey.create(alice, "ci")
    given = {"full": plaintext, "display_prefix": key.display_prefix, "prefix": key.prefix}[form]
    out = StringIO()
    call_command("revoke_api_key", given, stdout=out)
    assert "revoked" in out.getvalue()
    assert_error(ApiClient(client, plaintext).get("/workflows"), 401)


def test_revoke_api_key_refuses_an_unknown_key(alice):
    ApiKey.create(alice, "ci")
    with pytest.raises(CommandError, match="no API key matches"):
        call_command("revoke_api_key", "fmx_0000000000", stdout=StringIO())
    with pytest.raises(CommandError):
        call_command("revoke_api_key", "fmx_0000000000_" + "a" * 43, stdout=StringIO())
    assert ApiKey.objects.active().count() == 1
