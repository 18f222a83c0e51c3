"""The workflow page's forms for triggers and flow control.

A form turns what a person typed into the definition's shape (SPEC §2): a trigger object
or the flow-control rules. The rules themselves (a cron that fires, a known time zone, a
filter that compiles, limits in range, key templates that parse) are the definition
validator's: `add_problems` puts its problems beside the fields they concern, so the page
and publishing can never disagree.
"""

from __future__ import annotations

import json

from django import forms

from engine.validation import Problem
from triggers.editing import problem_message
from triggers.redaction import REDACTED

TEXT = {"autocomplete": "off", "spellcheck": "false"}


class TriggerForm(forms.Form):
    """One trigger type's form. Subclasses set `kind` and define `trigger(current)`: the
    trigger object from the cleaned data (`current`: the trigger it replaces, or None)."""

    kind: str = ""

    def add_problems(self, problems: list[Problem]) -> None:
        """Validator problems of this trigger (loc settings.triggers.<i>.<field>)."""
        for problem in problems:
            field = problem.loc[3] if len(problem.loc) > 3 else None
            self.add_error(field if field in self.fields else None, problem_message(problem))


class WebhookTriggerForm(TriggerForm):
    kind = "webhook"
    secret = forms.CharField(
        required=False,
        strip=False,
        max_length=500,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Requests must then be signed with it (HMAC-SHA256). "
        "Leave empty to keep the current secret.",
    )
    clear_secret = forms.BooleanField(required=False, label="Remove the secret")

    def clean_secret(self):
        secret = self.cleaned_data["secret"]
        if secret == REDACTED:
            raise forms.ValidationError("This is the placeholder shown for a stored secret.")
        return secret

    def clean(self):
        data = super().clean()
        if data.get("secret") and data.get("clear_secret"):
            self.add_error("clear_secret", "Either type a new secret or remove it, not both.")
        return data

    def trigger(self, current: dict | None) -> dict:
        trigger = {"type": "webhook"}
        secret = self.cleaned_data["secret"]
        if not secret and current and not self.cleaned_data["clear_secret"]:
            secret = current.get("secret")
        if secret:
            trigger["secret"] = secret
        return trigger


class ScheduleTriggerForm(TriggerForm):
    kind = "schedule"
    cron = forms.CharField(
        max_length=200,
        widget=forms.TextInput(attrs={**TEXT, "placeholder": "0 9 * * 1-5"}),
        help_text="5 fields (minute hour day month weekday), 6 with seconds first, or @daily.",
    )
    timezone = forms.CharField(
        max_length=64,
        initial="UTC",
        label="Time zone",
        widget=forms.TextInput(attrs={**TEXT, "placeholder": "Europe/Berlin"}),
    )
    input = forms.CharField(
        required=False,
        label="Input (JSON object)",
        widget=forms.Textarea(attrs={**TEXT, "rows": 3, "placeholder": "{}"}),
    )
    catch_up = forms.BooleanField(
        required=False,
        label="After downtime, run once to catch up",
        help_text="Off: missed ticks are skipped.",
    )

    @classmethod
    def initial_from(cls, trigger: dict) -> dict:
        return {
            "cron": trigger.get("cron", ""),
            "timezone": trigger.get("timezone") or "UTC",
            "input": json.dumps(trigger.get("input") or {}, indent=2),
            "catch_up": trigger.get("catch_up") is True,
        }

    def clean_input(self):
        text = self.cleaned_data["input"].strip()
        if not text:
            return {}
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc.msg} (line {exc.lineno}).") from None
        if not isinstance(value, dict):
            raise forms.ValidationError('The input must be a JSON object, e.g. {"a": 1}.')
        return value

    def trigger(self, current: dict | None) -> dict:
        data = self.cleaned_data
        return {
            "type": "schedule",
            "cron": data["cron"].strip(),
            "timezone": data["timezone"].strip(),
            "input": data["input"],
            "catch_up": data["catch_up"],
        }


class EventTriggerForm(TriggerForm):
    kind = "event"
    event = forms.CharField(
        max_length=200,
        label="Event name",
        widget=forms.TextInput(attrs={**TEXT, "placeholder": "order.created"}),
    )
    filter = forms.CharField(
        required=False,
        max_length=2000,
        widget=forms.TextInput(attrs={**TEXT, "placeholder": "event.data.total > 100"}),
        help_text="An expression over event (name, data, id); empty: every event.",
    )

    @classmethod
    def initial_from(cls, trigger: dict) -> dict:
        return {"event": trigger.get("event", ""), "filter": trigger.get("filter") or ""}

    def trigger(self, current: dict | None) -> dict:
        trigger = {"type": "event", "event": self.cleaned_data["event"].strip()}
        if self.cleaned_data["filter"].strip():
            trigger["filter"] = self.cleaned_data["filter"].strip()
        return trigger


TRIGGER_FORMS: dict[str, type[TriggerForm]] = {
    form.kind: form for form in (WebhookTriggerForm, ScheduleTriggerForm, EventTriggerForm)
}


def trigger_form(kind: str, trigger: dict | None = None, data=None) -> TriggerForm:
    """The form for a trigger of `kind`: blank, filled from `trigger`, or bound to `data`."""
    form_class = TRIGGER_FORMS[kind]
    initial = form_class.initial_from(trigger) if trigger and kind != "webhook" else None
    return form_class(data=data, initial=initial, prefix=kind)


def _int(**kwargs) -> forms.IntegerField:
    return forms.IntegerField(required=False, **kwargs)


def _seconds(**kwargs) -> forms.FloatField:
    return forms.FloatField(required=False, label="Period (seconds)", **kwargs)


def _key(**kwargs) -> forms.CharField:
    return forms.CharField(
        required=False,
        max_length=500,
        label="Key",
        widget=forms.TextInput(attrs={**TEXT, "placeholder": "{{ input.customer_id }}"}),
        **kwargs,
    )


class FlowControlForm(forms.Form):
    """Every flow-control rule; a rule whose fields are all empty is off."""

    concurrency_limit = _int(label="Limit", help_text="At most this many running per key.")
    concurrency_key = _key()
    rate_limit_limit = _int(label="Limit", help_text="Excess runs are cancelled.")
    rate_limit_period_seconds = _seconds()
    rate_limit_key = _key()
    throttle_limit = _int(label="Limit", help_text="Excess runs are delayed.")
    throttle_period_seconds = _seconds()
    throttle_key = _key()
    debounce_period_seconds = _seconds(help_text="Of a burst, only the last request runs.")
    debounce_key = _key()
    priority = forms.CharField(
        required=False,
        max_length=500,
        widget=forms.TextInput(attrs={**TEXT, "placeholder": "0"}),
        help_text="A whole number or a template; higher runs are claimed first.",
    )

    RULE_FIELDS = {
        "concurrency": ("limit", "key"),
        "rate_limit": ("limit", "period_seconds", "key"),
        "throttle": ("limit", "period_seconds", "key"),
        "debounce": ("period_seconds", "key"),
    }

    @classmethod
    def initial_from(cls, settings: dict) -> dict:
        initial = {}
        for rule, fields in cls.RULE_FIELDS.items():
            config = settings.get(rule)
            if isinstance(config, dict):
                for field in fields:
                    initial[f"{rule}_{field}"] = config.get(field)
        if settings.get("priority") is not None:
            initial["priority"] = str(settings["priority"])
        return initial

    def groups(self) -> list[tuple[str, list]]:
        """(rule, its bound fields), for the template."""
        return [
            (rule, [self[f"{rule}_{field}"] for field in fields])
            for rule, fields in self.RULE_FIELDS.items()
        ]

    def rules(self) -> dict:
        """Each of FLOW_RULES: its settings value, or None when off."""
        data = self.cleaned_data
        rules: dict = {}
        for rule, fields in self.RULE_FIELDS.items():
            values = {}
            for field in fields:
                value = data.get(f"{rule}_{field}")
                if isinstance(value, str):
                    value = value.strip()
                if isinstance(value, float) and value.is_integer():
                    value = int(value)
                if value not in (None, ""):
                    values[field] = value
            # A key alone turns nothing on: keep it so the validator asks for the limit.
            rules[rule] = values or None
        priority = data.get("priority", "").strip()
        if not priority:
            rules["priority"] = None
        else:
            try:
                rules["priority"] = int(priority)
            except ValueError:
                rules["priority"] = priority  # a template (or junk the validator names)
        return rules

    def add_problems(self, problems: list[Problem]) -> None:
        """Validator problems at settings.<rule>[.<field>]."""
        for problem in problems:
            rule = problem.loc[1]
            if rule == "priority":
                self.add_error("priority", problem.msg)
                continue
            field = problem.loc[2] if len(problem.loc) > 2 else self.RULE_FIELDS[rule][0]
            name = f"{rule}_{field}"
            self.add_error(name if name in self.fields else None, problem.msg)
