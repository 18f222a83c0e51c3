"""Accounts test helpers: the three roles' users (alice admin, bob member, vera viewer)."""

import pytest

from runs.tests.conftest import drive  # noqa: F401  (a fixture for run states)

ROLES = ("viewer", "member", "admin")


@pytest.fixture
def users_by_role(alice, bob, vera):
    return {"admin": alice, "member": bob, "viewer": vera}


@pytest.fixture
def signed_in(client, users_by_role):
    """signed_in(role) -> the test client signed in as that role's user (or anonymous)."""

    def sign_in(role):
        client.logout()
        if role != "anonymous":
            client.force_login(users_by_role[role])
        return client

    return sign_in
