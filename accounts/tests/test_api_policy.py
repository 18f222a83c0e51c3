"""Every API operation names the scope it needs, and roles and key scopes bound it: a
role × operation matrix generated from the OpenAPI document, for sessions and for keys."""

import json
import uuid

import pytest

from accounts.access import policy_of
from accounts.models import ApiKey
from accounts.roles import READ, may
from accounts.users import create_user, set_role
from flowmatrx.api import api
from flowmatrx.api.auth import SCOPES, ApiKeyAuth, SessionAuth
from runs.models import Run
from workflows.models import Workflow

READ_ONLY_POSTS = {("POST", "/api/v1/workflows/{workflow_id}/validate")}
"""Unsafe methods that change nothing, so a viewer may use them."""


def operations():
    """(METHOD, /api/v1 path, ninja Operation) of every operation the API serves."""
    for bound in api._get_bound_routers():
        for path, path_view in bound.path_operations.items():
            for operation in path_view.operations:
                for method in operation.methods:
                    yield method, "/api/v1" + path, operation


DOCUMENTED = [
    (method.upper(), path)
    for path, item in api.get_openapi_schema()["paths"].items()
    for method in item
]
BY_ROUTE = {(method, path): op for method, path, op in operations()}


def scope_of(method, path) -> str:
    callbacks = BY_ROUTE[(method, path)].auth_callbacks
    kinds = sorted(type(c).__name__ for c in callbacks)
    assert kinds == ["ApiKeyAuth", "SessionAuth"], (method, path, kinds)
    scopes = {c.scope for c in callbacks if isinstance(c, ApiKeyAuth | SessionAuth)}
    assert len(scopes) == 1 and scopes <= set(SCOPES), (method, path, scopes)
    return scopes.pop()


def test_every_operation_is_documented_or_declared_public():
    for method, path, operation in operations():
        if operation.include_in_schema:
            assert (method, path) in DOCUMENTED
            scope_of(method, path)
        else:
            policy = policy_of(operation.view_func)
            assert policy is not None and policy.action is None and policy.reason, (method, path)
            assert not operation.auth_callbacks, (method, path)


def test_only_reads_are_open_to_viewers():
    for method, path in DOCUMENTED:
        if method != "GET" and (method, path) not in READ_ONLY_POSTS:
            assert scope_of(method, path) != READ, (method, path)


def _url(path):
    return path.replace("{workflow_id}", str(uuid.uuid4())).replace("{run_id}", str(uuid.uuid4()))


def _counts():
    return (Workflow.objects.count(), Run.objects.count(), ApiKey.objects.count())


def _call(client, method, path, key=None):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    body = "" if method == "GET" else json.dumps({})
    return client.generic(
        method, _url(path), body, content_type="application/json", headers=headers
    )


KEY_CASES = [
    ("admin", ["read"]),
    ("admin", ["run"]),
    ("admin", list(SCOPES)),
    ("member", ["run"]),
    ("member", ["manage"]),
    ("member", list(SCOPES)),
    ("viewer", list(SCOPES)),
    ("viewer", ["manage"]),
]


@pytest.mark.parametrize(("method", "path"), DOCUMENTED, ids=[f"{m} {p}" for m, p in DOCUMENTED])
def test_role_by_operation_matrix(client, users_by_role, method, path):
    scope = scope_of(method, path)
    wrong = []
    for role, user in users_by_role.items():  # sessions: the role's rights
        client.force_login(user)
        before = _counts()
        status = _call(client, method, path).status_code
        allowed = may(user, scope)
        if allowed == (status == 403) or status == 401 or (not allowed and _counts() != before):
            wrong.append((f"session {role}", status))
        client.logout()
    for role, scopes in KEY_CASES:  # keys: the owner's role AND the key's scopes
        user = users_by_role[role]
        key = ApiKey.create(user, "matrix", scopes)[1]
        before = _counts()
        response = _call(client, method, path, key)
        allowed = may(user, scope) and scope in scopes
        if allowed == (response.status_code == 403) or response.status_code == 401:
            wrong.append((f"{role} key {scopes}", response.status_code))
        if not allowed:
            assert response.json()["errors"][0]["loc"] == ["header", "Authorization"]
            assert _counts() == before
    assert not wrong, f"{method} {path} needs {scope!r}; wrong answers: {wrong}"


def test_an_admins_read_key_cannot_run_or_edit(client, alice, workflow):
    key = ApiKey.create(alice, "read only", ["read"])[1]
    headers = {"Authorization": f"Bearer {key}"}
    assert client.get(f"/api/v1/workflows/{workflow.pk}", headers=headers).status_code == 200
    for action in ("publish", "run"):
        response = client.post(f"/api/v1/workflows/{workflow.pk}/{action}", headers=headers)
        assert response.status_code == 403
        assert "scope" in response.json()["errors"][0]["msg"]
    workflow.refresh_from_db()
    assert workflow.status == "draft" and not workflow.runs.exists()


def test_a_viewers_manage_key_still_cannot_edit(client, vera, workflow):
    key = ApiKey.create(vera, "wishful", ["read", "manage"])[1]
    response = client.put(
        f"/api/v1/workflows/{workflow.pk}",
        {"name": "Renamed"},
        content_type="application/json",
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.status_code == 403
    assert "viewer role" in response.json()["errors"][0]["msg"]
    workflow.refresh_from_db()
    assert workflow.name == "Greeting"


def test_a_role_change_applies_to_existing_keys_at_once(client, db):
    carl = create_user("carl", "member", "pw-for-carl-1")
    key = ApiKey.create(carl, "all", list(SCOPES))[1]
    headers = {"Authorization": f"Bearer {key}"}
    body = {"name": "Mine", "definition": {"nodes": [], "edges": []}}

    def create():
        return client.post(
            "/api/v1/workflows", body, content_type="application/json", headers=headers
        )

    assert create().status_code == 201
    set_role(carl, "viewer")
    assert create().status_code == 403
    assert client.get("/api/v1/workflows", headers=headers).status_code == 200
