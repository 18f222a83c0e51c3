from __future__ import annotations

from datetime import timedelta

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import AuthenticationForm, UserCreationForm
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts import throttle, users
from accounts.models import SCOPES, ApiKey
from accounts.roles import Role


class ThrottledLoginMixin:
    """Refuse a sign-in while its username+address is over the failure limit
    (accounts.throttle); count failures; forget them after a success."""

    def clean(self):
        username = self.cleaned_data.get("username") or ""
        address = throttle.client_address(self.request)
        wait = throttle.seconds_blocked(username, address)
        if wait:
            raise ValidationError(
                "Too many failed sign-ins; try again in %(wait)s.",
                code="throttled",
                params={"wait": throttle.describe_wait(wait)},
            )
        try:
            cleaned = super().clean()
        except ValidationError as error:
            if any(e.code == "invalid_login" for e in error.error_list):
                throttle.record_failure(username, address)
            raise
        throttle.clear(username, address)
        return cleaned


class LoginForm(ThrottledLoginMixin, AuthenticationForm):
    pass


class AdminLoginForm(ThrottledLoginMixin, AdminAuthenticationForm):
    pass


class UserCreateForm(UserCreationForm):
    """A new user with a role and an initial password (the admin hands it over; the user
    changes it at /accounts/password/). No email server is needed."""

    email = forms.EmailField(required=False)
    role = forms.ChoiceField(choices=Role.choices, initial=Role.MEMBER)

    class Meta(UserCreationForm.Meta):
        model = get_user_model()
        fields = ("username", "email")

    def create(self):
        with transaction.atomic():
            user = self.save()
            users.set_role(user, self.cleaned_data["role"])
        return user


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class ActiveForm(forms.Form):
    active = forms.TypedChoiceField(
        choices=[("true", "active"), ("false", "inactive")], coerce=lambda v: v == "true"
    )


EXPIRY_CHOICES = [
    ("", "Never"),
    ("7", "7 days"),
    ("30", "30 days"),
    ("90", "90 days"),
    ("365", "1 year"),
]


class ApiKeyForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What the key is for.")
    scopes = forms.MultipleChoiceField(
        choices=[(s, s) for s in SCOPES],
        widget=forms.CheckboxSelectMultiple,
        initial=["read"],
        help_text="read: every GET; run: runs and events; manage: workflows.",
    )
    expires_in_days = forms.TypedChoiceField(
        choices=EXPIRY_CHOICES, coerce=int, empty_value=None, required=False, label="Expires"
    )

    def create(self, user) -> tuple[ApiKey, str]:
        days = self.cleaned_data["expires_in_days"]
        expires_at = timezone.now() + timedelta(days=days) if days else None
        return ApiKey.create(
            user, self.cleaned_data["name"], self.cleaned_data["scopes"], expires_at=expires_at
        )
