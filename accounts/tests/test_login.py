"""Signing in and out, and the login rate limit (per username and address)."""

import uuid

import pytest
from django.urls import reverse

from accounts.users import create_user


@pytest.fixture
def person(db):
    """A member with a unique name (rate-limit counters live in a shared cache)."""
    name = f"p-{uuid.uuid4().hex[:10]}"
    return create_user(name, "member", "Right-Pass-42")


@pytest.fixture
def limit(settings):
    settings.FLOWMATRX_LOGIN_ATTEMPTS = 3
    settings.FLOWMATRX_LOGIN_WINDOW_SECONDS = 600
    return 3


def sign_in(client, username, password, address="10.0.0.1", path=None):
    return client.post(
        path or reverse("login"),
        {"username": username, "password": password},
        REMOTE_ADDR=address,
    )


def test_the_sign_in_page_signs_in_and_shows_the_role(client, person):
    page = client.get(reverse("login"))
    assert page.status_code == 200 and b'name="password"' in page.content
    response = sign_in(client, person.username, "Right-Pass-42")
    assert response.status_code == 302 and response["Location"] == "/"
    home = client.get("/").content.decode()
    assert person.username in home and "role-member" in home and "Sign out" in home


def test_sign_out_is_a_post(client, person):
    client.force_login(person)
    assert client.get(reverse("logout")).status_code == 405
    response = client.post(reverse("logout"))
    assert response.status_code == 302 and response["Location"] == reverse("login")
    assert client.get("/").status_code == 302


def test_failures_over_the_limit_are_refused_even_with_the_right_password(client, person, limit):
    for _ in range(limit):
        response = sign_in(client, person.username, "wrong")
        assert response.status_code == 200
        assert "Too many" not in response.content.decode()
    response = sign_in(client, person.username, "Right-Pass-42")
    text = response.content.decode()
    assert response.status_code == 200 and "_auth_user_id" not in client.session
    assert "Too many failed sign-ins; try again in 10 minutes." in text
    # other addresses and other usernames are not affected
    assert sign_in(client, person.username, "Right-Pass-42", address="10.0.0.2").status_code == 302


def test_a_success_forgets_earlier_failures(client, person, limit):
    for _ in range(limit - 1):
        sign_in(client, person.username, "wrong")
    assert sign_in(client, person.username, "Right-Pass-42").status_code == 302
    client.logout()
    for _ in range(limit - 1):
        sign_in(client, person.username, "wrong")
    assert sign_in(client, person.username, "Right-Pass-42").status_code == 302


def test_the_username_is_case_insensitive_for_counting(client, person, limit):
    for _ in range(limit):
        sign_in(client, person.username.upper(), "wrong")
    response = sign_in(client, person.username, "Right-Pass-42")
    assert "Too many" in response.content.decode()


def test_the_admin_sign_in_is_limited_too(client, limit, db):
    admin = create_user(f"a-{uuid.uuid4().hex[:10]}", "admin", "Admin-Pass-42")
    for _ in range(limit):
        sign_in(client, admin.username, "wrong", path="/admin/login/")
    response = sign_in(client, admin.username, "Admin-Pass-42", path="/admin/login/")
    assert response.status_code == 200 and "Too many" in response.content.decode()
