"""The access policy of every page, declared on the view (accounts.roles says what the
actions mean).

    @requires(READ)          # signed in, with a role allowing READ
    def run_list(request): ...

    @public("the webhook's token is its credential")
    def webhook(request, token): ...

Both record the policy on the view as `access_policy`; a test walks every URL pattern of
the project and fails for a view without one. Anonymous users are sent to sign in; a
signed-in user whose role lacks the action gets 403 (see accounts.roles for why never 404).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied

from accounts.roles import REQUIRED_ROLE, may


@dataclass(frozen=True)
class Policy:
    action: str | None
    """The action the view needs (accounts.roles), None for a public view."""
    reason: str = ""
    """Why a public view needs no sign-in."""


def requires(action: str):
    """Decorate a view that needs a signed-in user whose role allows `action`."""
    if action not in REQUIRED_ROLE:
        raise ValueError(f"unknown action {action!r}; one of {', '.join(REQUIRED_ROLE)}")

    def decorate(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            user = request.user
            if not user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not may(user, action):
                raise PermissionDenied(f"your role does not allow {action}")
            return view(request, *args, **kwargs)

        wrapped.access_policy = Policy(action)
        return wrapped

    return decorate


def public(reason: str):
    """Decorate a view anyone may reach; `reason` says why (it is reviewed)."""
    if not reason:
        raise ValueError("say why the view is public")

    def decorate(view):
        view.access_policy = Policy(None, reason)
        return view

    return decorate


def policy_of(view) -> Policy | None:
    return getattr(view, "access_policy", None)
