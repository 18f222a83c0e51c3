"""Who may do what: the one place that says what each role allows (SPEC §7).

Roles, from least to most: **viewer** reads everything (workflows, runs, events, the
catalog, live run streams); **member** also edits, publishes, archives and deletes
workflows, starts, cancels, retries and resumes runs, approves, sends events and toggles
schedules; **admin** also manages users and every user's API keys.

A user's role is `accounts.Profile.role`, set through `accounts.users` (which keeps
Django's is_superuser/is_staff in step: admins have both). A user without a profile is an
admin if a superuser (so `createsuperuser` makes the first admin), else a **viewer**
(least privilege: someone made in the Django admin or a shell sees but changes nothing
until an admin gives them a role). Inactive and anonymous users have no role.

Refusals: a signed-in user without the role answers **403** everywhere (pages, API,
WebSocket close code 4403). Every workflow and run is visible to every role, so a 403
leaks nothing. The one exception is another user's API key: to a non-admin it does not
exist (**404**), so key ids cannot be probed.
"""

from __future__ import annotations

from django.db import models


class Role(models.TextChoices):
    VIEWER = "viewer", "Viewer"
    MEMBER = "member", "Member"
    ADMIN = "admin", "Admin"


DEFAULT_ROLE = Role.VIEWER
RANK = {Role.VIEWER: 0, Role.MEMBER: 1, Role.ADMIN: 2}

READ = "read"
"""See workflows, runs, events, the catalog; watch run streams."""
RUN = "run"
"""Start, cancel, retry and resume runs, approve, send events."""
MANAGE = "manage"
"""Create, edit, publish, archive and delete workflows; toggle schedules."""
ADMINISTER = "administer"
"""Users, their roles, every user's API keys."""

REQUIRED_ROLE = {
    READ: Role.VIEWER,
    RUN: Role.MEMBER,
    MANAGE: Role.MEMBER,
    ADMINISTER: Role.ADMIN,
}
"""The least role each action needs. API key scopes are the first three actions."""


def role_of(user) -> Role | None:
    """The role of `user`, or None for anonymous and inactive users."""
    if user is None or not user.is_authenticated or not user.is_active:
        return None
    cached = getattr(user, "_flowmatrx_role", None)
    if cached is None:
        from accounts.models import Profile

        stored = Profile.objects.filter(user=user).values_list("role", flat=True).first()
        cached = Role(stored) if stored else role_without_profile(user)
        user._flowmatrx_role = cached
    return cached


def role_without_profile(user) -> Role:
    return Role.ADMIN if user.is_superuser else DEFAULT_ROLE


def has_role(user, role: Role) -> bool:
    actual = role_of(user)
    return actual is not None and RANK[actual] >= RANK[Role(role)]


def may(user, action: str) -> bool:
    """Whether `user`'s role allows `action` (one of READ, RUN, MANAGE, ADMINISTER)."""
    return has_role(user, REQUIRED_ROLE[action])


def forget(user) -> None:
    """Drop the role cached on this user object (after it changed)."""
    user.__dict__.pop("_flowmatrx_role", None)
