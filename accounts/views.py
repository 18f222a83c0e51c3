"""Sign-in, users (admins) and API keys (everyone's own; admins see and revoke all)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import SetPasswordForm
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import reverse_lazy
from django.views.decorators.http import require_POST

from accounts import users
from accounts.access import public, requires
from accounts.forms import ActiveForm, ApiKeyForm, LoginForm, RoleForm, UserCreateForm
from accounts.models import ApiKey
from accounts.roles import ADMINISTER, READ, Role, may

login = public("the sign-in page")(
    auth_views.LoginView.as_view(authentication_form=LoginForm, redirect_authenticated_user=True)
)
logout = public("signing out needs no role (POST only, CSRF-checked)")(
    auth_views.LogoutView.as_view(next_page="login")
)


class PasswordChangeView(auth_views.PasswordChangeView):
    success_url = reverse_lazy("accounts:keys")

    def form_valid(self, form):
        messages.success(self.request, "Your password was changed.")
        return super().form_valid(form)


password_change = requires(READ)(PasswordChangeView.as_view())


# -- users (admins) -----------------------------------------------------------------------------


def _users_page(request, form, status=200):
    context = {"users": users.listing(), "form": form, "roles": Role.choices}
    return TemplateResponse(request, "accounts/user_list.html", context, status=status)


@requires(ADMINISTER)
def user_list(request):
    return _users_page(request, UserCreateForm())


@requires(ADMINISTER)
@require_POST
def user_create(request):
    form = UserCreateForm(request.POST)
    if form.is_valid():
        user = form.create()
        messages.success(request, f"Created {user.get_username()}; give them their password.")
        return redirect("accounts:users")
    return _users_page(request, form, status=400)


def _user_change(request, user_id, form_class, change):
    """Apply `change(user, value)` from a one-field form; errors go back as a message."""
    user = get_object_or_404(get_user_model(), pk=user_id)
    form = form_class(request.POST)
    if not form.is_valid():
        problems = "; ".join(f"{k}: {e}" for k, errors in form.errors.items() for e in errors)
        messages.error(request, f"{user.get_username()} not changed: {problems}")
        return _users_page(request, UserCreateForm(), status=400)
    try:
        change(user, *form.cleaned_data.values())
    except users.LastAdminError as error:
        messages.error(request, f"Not changed: {error}.")
    else:
        messages.success(request, f"Updated {user.get_username()}.")
    return redirect("accounts:users")


@requires(ADMINISTER)
@require_POST
def user_role(request, user_id):
    return _user_change(request, user_id, RoleForm, users.set_role)


@requires(ADMINISTER)
@require_POST
def user_active(request, user_id):
    return _user_change(request, user_id, ActiveForm, users.set_active)


@requires(ADMINISTER)
@require_POST
def user_password(request, user_id):
    """Set a user's password (no email server needed: the admin hands it over)."""
    user = get_object_or_404(get_user_model(), pk=user_id)
    form = SetPasswordForm(user, request.POST)
    if not form.is_valid():
        problems = "; ".join(e for errors in form.errors.values() for e in errors)
        messages.error(request, f"Password of {user.get_username()} not set: {problems}")
        return _users_page(request, UserCreateForm(), status=400)
    form.save()
    messages.success(request, f"Set a new password for {user.get_username()}.")
    return redirect("accounts:users")


# -- API keys -----------------------------------------------------------------------------------


def _keys_page(request, form, plaintext=None, status=200):
    keys = ApiKey.objects.visible_to(request.user).select_related("user")
    context = {
        "keys": keys,
        "form": form,
        "plaintext": plaintext,
        "show_owner": may(request.user, ADMINISTER),
    }
    return TemplateResponse(request, "accounts/key_list.html", context, status=status)


@requires(READ)
def key_list(request):
    return _keys_page(request, ApiKeyForm())


@requires(READ)
@require_POST
def key_create(request):
    """A key of the signed-in user; the plaintext is in this one response only."""
    form = ApiKeyForm(request.POST)
    if not form.is_valid():
        return _keys_page(request, form, status=400)
    _key, plaintext = form.create(request.user)
    return _keys_page(request, ApiKeyForm(), plaintext=plaintext, status=201)


@requires(READ)
@require_POST
def key_revoke(request, key_id):
    key = get_object_or_404(ApiKey.objects.visible_to(request.user), pk=key_id)
    key.revoke()
    messages.success(request, f"Revoked {key.display_prefix}.")
    return redirect("accounts:keys")
