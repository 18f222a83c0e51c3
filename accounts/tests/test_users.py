"""User management by admins: create with a role, change roles, deactivate and
reactivate; never leaving the server without an active admin."""

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from accounts.roles import Role, role_of
from accounts.users import LastAdminError, admins, create_user, set_active, set_role

User = get_user_model()


def test_superusers_are_admins_and_users_without_a_profile_are_viewers(alice, db):
    plain = User.objects.create_user("plain", password="x")
    assert role_of(alice) == Role.ADMIN
    assert role_of(plain) == Role.VIEWER
    plain.is_active = False
    assert role_of(plain) is None


def test_the_admin_role_is_also_django_superuser_and_staff(alice, bob):
    set_role(bob, "admin")
    bob.refresh_from_db()
    assert bob.is_superuser and bob.is_staff and role_of(bob) == Role.ADMIN
    set_role(bob, "viewer")
    bob.refresh_from_db()
    assert not bob.is_superuser and not bob.is_staff and role_of(bob) == Role.VIEWER


def test_the_last_active_admin_cannot_be_demoted_or_deactivated(alice, bob):
    with pytest.raises(LastAdminError):
        set_role(alice, "member")
    with pytest.raises(LastAdminError):
        set_active(alice, False)
    alice.refresh_from_db()
    assert alice.is_active and role_of(alice) == Role.ADMIN
    set_role(bob, "admin")
    set_role(alice, "member")  # another admin exists now
    assert list(admins()) == [bob]


def test_an_inactive_admin_does_not_count(alice, db):
    other = create_user("other-admin", "admin", "pw-Other-1")
    set_active(other, False)
    with pytest.raises(LastAdminError):
        set_role(alice, "viewer")


def test_admins_create_users_with_a_role_and_password(client, alice):
    client.force_login(alice)
    response = client.post(
        reverse("accounts:user_create"),
        {
            "username": "dana",
            "email": "dana@example.com",
            "role": "member",
            "password1": "Correct-Horse-9",
            "password2": "Correct-Horse-9",
        },
    )
    assert response.status_code == 302
    dana = User.objects.get(username="dana")
    assert role_of(dana) == Role.MEMBER and dana.check_password("Correct-Horse-9")
    client.logout()
    assert client.login(username="dana", password="Correct-Horse-9")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"role": "owner"}, "role"),
        ({"password2": "different-Pass-1"}, "password2"),
        ({"password1": "123", "password2": "123"}, "password2"),
        ({"username": "bob"}, "username"),
        ({"username": ""}, "username"),
    ],
)
def test_creating_a_user_answers_field_errors_and_creates_nothing(
    client, alice, bob, changes, field
):
    client.force_login(alice)
    data = {
        "username": "erin",
        "role": "viewer",
        "password1": "Pass-Word-77",
        "password2": "Pass-Word-77",
    }
    before = User.objects.count()
    response = client.post(reverse("accounts:user_create"), {**data, **changes})
    assert response.status_code == 400
    assert response.context["form"].errors[field]
    assert User.objects.count() == before


def test_the_users_page_changes_roles_and_deactivates(client, alice, bob):
    client.force_login(alice)
    page = client.get(reverse("accounts:users"))
    assert page.status_code == 200 and b"bob" in page.content
    client.post(reverse("accounts:user_role", args=[bob.pk]), {"role": "viewer"})
    bob.refresh_from_db()
    assert role_of(bob) == Role.VIEWER
    client.post(reverse("accounts:user_active", args=[bob.pk]), {"active": "false"})
    bob.refresh_from_db()
    assert not bob.is_active
    client.post(reverse("accounts:user_active", args=[bob.pk]), {"active": "true"})
    bob.refresh_from_db()
    assert bob.is_active and role_of(bob) == Role.VIEWER


def test_the_users_page_refuses_to_remove_the_last_admin(client, alice):
    client.force_login(alice)
    response = client.post(
        reverse("accounts:user_role", args=[alice.pk]), {"role": "member"}, follow=True
    )
    assert "at least one active admin" in response.content.decode()
    response = client.post(
        reverse("accounts:user_active", args=[alice.pk]), {"active": "false"}, follow=True
    )
    assert "at least one active admin" in response.content.decode()
    alice.refresh_from_db()
    assert alice.is_active and role_of(alice) == Role.ADMIN


@pytest.mark.parametrize(
    ("view", "data"), [("user_role", {"role": "root"}), ("user_active", {"active": "maybe"})]
)
def test_bad_changes_answer_400_and_change_nothing(client, alice, bob, view, data):
    client.force_login(alice)
    response = client.post(reverse(f"accounts:{view}", args=[bob.pk]), data)
    assert response.status_code == 400
    assert "bob not changed" in response.content.decode()
    bob.refresh_from_db()
    assert bob.is_active and role_of(bob) == Role.MEMBER


def test_a_deactivated_user_is_signed_out_of_pages_and_the_api(client, bob):
    client.force_login(bob)
    assert client.get("/workflows/").status_code == 200
    set_active(bob, False)
    response = client.get("/workflows/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert client.get("/api/v1/workflows").status_code == 401


def test_the_stored_role_wins_over_a_superuser_flag_set_elsewhere(alice, bob):
    bob.is_superuser = True  # e.g. ticked in the Django admin: the role still says member
    bob.save()
    assert role_of(User.objects.get(pk=bob.pk)) == Role.MEMBER
    assert list(admins()) == [alice]


def test_admins_set_a_users_password_with_validation(client, alice, bob):
    client.force_login(alice)
    url = reverse("accounts:user_password", args=[bob.pk])
    weak = client.post(url, {"new_password1": "123", "new_password2": "123"})
    assert weak.status_code == 400 and "too short" in weak.content.decode()
    differ = client.post(url, {"new_password1": "Fresh-Pass-42", "new_password2": "Other-42-x"})
    assert differ.status_code == 400
    bob.refresh_from_db()
    assert bob.check_password("password")
    assert (
        client.post(
            url, {"new_password1": "Fresh-Pass-42", "new_password2": "Fresh-Pass-42"}
        ).status_code
        == 302
    )
    bob.refresh_from_db()
    assert bob.check_password("Fresh-Pass-42")


def test_users_change_their_own_password(client, bob):
    client.force_login(bob)
    response = client.post(
        reverse("accounts:password"),
        {
            "old_password": "password",
            "new_password1": "Mine-Now-42",
            "new_password2": "Mine-Now-4",
        },
    )
    assert response.status_code == 200 and response.context["form"].errors["new_password2"]
    response = client.post(
        reverse("accounts:password"),
        {
            "old_password": "password",
            "new_password1": "Mine-Now-42",
            "new_password2": "Mine-Now-42",
        },
        follow=True,
    )
    assert "Your password was changed." in response.content.decode()
    bob.refresh_from_db()
    assert bob.check_password("Mine-Now-42")
