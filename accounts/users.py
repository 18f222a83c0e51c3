"""Managing users: create with a role, change a role, deactivate and reactivate.

The rule these guard: there is always at least one active admin. Each change that could
remove the last one locks the admins' rows first, so two admins demoting each other at
the same moment cannot both succeed.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Q

from accounts.models import Profile
from accounts.roles import Role, forget, role_of, role_without_profile


class LastAdminError(Exception):
    """The change would leave no active admin."""


def admins():
    """Active users whose role is admin (accounts.roles.role_of, as a query)."""
    User = get_user_model()
    return User.objects.filter(is_active=True).filter(
        Q(profile__role=Role.ADMIN) | Q(profile__isnull=True, is_superuser=True)
    )


def stored_role(user) -> Role:
    """The role `user` has (or will have again when reactivated), active or not."""
    try:
        return Role(user.profile.role)
    except Profile.DoesNotExist:
        return role_without_profile(user)


def listing():
    """Every user by username, each with `flowmatrx_role` (stored_role)."""
    found = list(get_user_model().objects.select_related("profile").order_by("username"))
    for user in found:
        user.flowmatrx_role = stored_role(user)
    return found


def _guard_last_admin(user) -> None:
    """Raise LastAdminError if `user` is the only active admin (call inside atomic)."""
    ids = list(admins().select_for_update(of=("self",)).values_list("pk", flat=True))
    if ids == [user.pk]:
        raise LastAdminError("there must stay at least one active admin")


def set_role(user, role: Role | str) -> None:
    """Give `user` `role`. Admins are also Django superusers and staff (the Django admin
    site is theirs); any other role takes both away."""
    role = Role(role)
    with transaction.atomic():
        if role != Role.ADMIN and role_of(user) == Role.ADMIN:
            _guard_last_admin(user)
        Profile.objects.update_or_create(user=user, defaults={"role": role})
        user.is_superuser = user.is_staff = role == Role.ADMIN
        user.save(update_fields=["is_superuser", "is_staff"])
    forget(user)


def set_active(user, active: bool) -> None:
    with transaction.atomic():
        if not active and role_of(user) == Role.ADMIN:
            _guard_last_admin(user)
        user.is_active = active
        user.save(update_fields=["is_active"])
    forget(user)


def create_user(username: str, role: Role | str, password: str | None = None, email: str = ""):
    """A new active user with `role`; without a password, one that cannot sign in until a
    password is set (`manage.py changepassword`, or an admin on the user's page)."""
    with transaction.atomic():
        user = get_user_model().objects.create_user(username, email=email, password=password)
        set_role(user, role)
    return user
