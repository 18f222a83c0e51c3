"""Every page declares who may use it (accounts.access), and the declaration holds: a
role × page matrix generated from the project's URL patterns, so a view added anywhere
is covered (or fails the first test until it declares a policy)."""

import uuid

import pytest
from django.urls import URLResolver, get_resolver, reverse

from accounts.access import Policy, policy_of, public, requires
from accounts.models import ApiKey
from accounts.roles import REQUIRED_ROLE, may
from accounts.tests.conftest import ROLES
from engine.statuses import RunStatus
from runs.models import Run

SEPARATELY_ENFORCED = {
    "api-v1": "the JSON API: each operation names its scope (test_api_policy.py)",
    "admin": "the Django admin site: admin.site.has_permission is the admin role",
}


def full_names(patterns=None, namespaces=(), prefix=""):
    """(namespaced url name, route, pattern, namespaces) of every URL pattern."""
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            inner = (*namespaces, entry.namespace) if entry.namespace else namespaces
            yield from full_names(entry.url_patterns, inner, route)
        else:
            yield ":".join((*namespaces, entry.name or "")), route, entry, namespaces


PAGES = [
    (name, route, entry)
    for name, route, entry, namespaces in full_names()
    if not (namespaces and namespaces[0] in SEPARATELY_ENFORCED)
]
GUARDED = [
    (name, entry)
    for name, _, entry in PAGES
    if (policy_of(entry.callback) or Policy(None)).action is not None
]


def test_every_view_declares_an_access_policy():
    missing = [route for _, route, entry in PAGES if policy_of(entry.callback) is None]
    assert not missing, f"views without @requires(...) or @public(...): {missing}"
    assert GUARDED, "no guarded pages found"


def test_separately_enforced_namespaces_exist():
    namespaces = {ns[0] for _, _, _, ns in full_names() if ns}
    assert set(SEPARATELY_ENFORCED) <= namespaces


def test_public_views_say_why_and_unknown_actions_are_refused():
    with pytest.raises(ValueError):
        public("")
    with pytest.raises(ValueError):
        requires("everything")
    public_pages = {name: policy_of(entry.callback) for name, _, entry in PAGES}
    public_pages = {name: p.reason for name, p in public_pages.items() if p.action is None}
    assert set(public_pages) == {"healthz", "login", "logout", "triggers:webhook"}
    assert all(public_pages.values())


@pytest.fixture
def page_objects(workflow, alice, bob):
    """Real objects for the URL kwargs the pages take; unknown kwargs fail the test."""
    run = Run.objects.create(workflow=workflow, status=RunStatus.PAUSED, created_by=alice)
    key, _ = ApiKey.create(bob, "bob's")
    return {"workflow_id": workflow.pk, "run_id": run.pk, "user_id": bob.pk, "key_id": key.pk}


def url_of(name, entry, objects):
    kwargs = {}
    for kwarg, converter in entry.pattern.converters.items():
        if kwarg in objects:
            kwargs[kwarg] = objects[kwarg]
        elif converter.regex == "[0-9]+":
            kwargs[kwarg] = 999999
        elif "a-f" in converter.regex:
            kwargs[kwarg] = uuid.uuid4()
        else:
            pytest.fail(f"{name}: no test value for the URL kwarg {kwarg!r}; add one")
    return reverse(name, kwargs=kwargs)


@pytest.mark.parametrize("role", ["anonymous", *ROLES])
@pytest.mark.parametrize(("name", "entry"), GUARDED, ids=[name for name, _ in GUARDED])
def test_role_by_page_matrix(signed_in, users_by_role, page_objects, role, name, entry):
    action = policy_of(entry.callback).action
    client = signed_in(role)
    url = url_of(name, entry, page_objects)
    for method in ("get", "post"):
        response = getattr(client, method)(url)
        if role == "anonymous":
            assert response.status_code == 302, (method, url)
            assert response["Location"].startswith(reverse("login") + "?next="), (method, url)
        elif may(users_by_role[role], action):
            assert response.status_code not in (401, 403), (role, method, url)
            assert not response.get("Location", "").startswith(reverse("login")), (method, url)
        else:
            assert REQUIRED_ROLE[action] != role
            assert response.status_code == 403, (role, method, url, response.status_code)


def test_viewers_do_not_see_the_run_actions_members_do(signed_in, page_objects):
    url = reverse("runs:detail", args=[page_objects["run_id"]])
    member_page = signed_in("member").get(url).content.decode()
    viewer_page = signed_in("viewer").get(url).content.decode()
    assert "Cancel run" in member_page
    assert "Cancel run" not in viewer_page


def test_the_django_admin_is_for_admins_only(signed_in):
    assert signed_in("admin").get("/admin/").status_code == 200
    for role in ("member", "viewer"):
        response = signed_in(role).get("/admin/")
        assert response.status_code == 302 and "/admin/login/" in response["Location"]
