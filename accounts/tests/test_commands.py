"""The operator's commands: create_user (with a role) and revoke_api_key."""

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from accounts.models import ApiKey
from accounts.roles import Role, role_of


@pytest.mark.parametrize("role", ["admin", "member", "viewer"])
def test_create_user_with_a_role_and_password(db, role, capsys):
    call_command("create_user", "olga", "--role", role, "--password", "Olga-Pass-42")
    olga = get_user_model().objects.get(username="olga")
    assert role_of(olga) == Role(role) and olga.check_password("Olga-Pass-42")
    assert olga.is_superuser == (role == "admin")
    assert "Created olga" in capsys.readouterr().out


def test_create_user_without_a_password_makes_one_that_cannot_sign_in(db):
    call_command("create_user", "nopw", "--role", "viewer", "--no-password")
    assert not get_user_model().objects.get(username="nopw").has_usable_password()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["bob", "--role", "member", "--password", "Bob-Pass-42"], "exists already"),
        (["weak", "--role", "member", "--password", "123"], "too short"),
        (["x", "--role", "member"], "--password"),
    ],
)
def test_create_user_refuses_bad_arguments(bob, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("create_user", *args)
    assert get_user_model().objects.count() == 1


def test_create_user_refuses_an_unknown_role(db):
    with pytest.raises(CommandError):
        call_command("create_user", "x", "--role", "owner", "--password", "Some-Pass-42")
    assert not get_user_model().objects.exists()


def test_revoke_api_key_by_prefix(bob, capsys):
    key, plaintext = ApiKey.create(bob, "cli")
    call_command("revoke_api_key", key.display_prefix)
    key.refresh_from_db()
    assert key.revoked_at is not None and ApiKey.authenticate(plaintext) is None
    assert "revoked" in capsys.readouterr().out
