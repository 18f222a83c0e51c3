"""A webhook trigger's secret is never read back: it shows as `REDACTED` in the API's
workflow resource and on pages, the way a step's writeOnly config is stored redacted with
its step runs (`engine.registry.StepType.redact`).

So that a client can save back what it read, a definition that carries the placeholder as
a webhook secret keeps the secret stored for that trigger (`keep_secrets`): the first
webhook trigger's placeholder stands for the stored first webhook trigger's secret, and so
on. The placeholder where nothing is stored is refused: it would become the secret.
"""

from __future__ import annotations

import copy

from engine.registry import REDACTED


class MissingSecret(ValueError):
    """The definition carries the redacted placeholder where no secret is stored."""

    def __init__(self, index: int):
        self.loc = ("settings", "triggers", index, "secret")
        super().__init__(
            f"trigger {index + 1}: {REDACTED!r} stands for a stored secret, and this webhook "
            "trigger has none: send the secret itself, or leave 'secret' out"
        )


def _webhooks(definition) -> list[tuple[int, dict]]:
    settings = definition.get("settings") if isinstance(definition, dict) else None
    triggers = settings.get("triggers") if isinstance(settings, dict) else None
    if not isinstance(triggers, list):
        return []
    return [
        (index, trigger)
        for index, trigger in enumerate(triggers)
        if isinstance(trigger, dict) and trigger.get("type") == "webhook"
    ]


def redact_definition(definition):
    """`definition` with every webhook secret replaced by REDACTED (a copy when it has one)."""
    if not any(trigger.get("secret") for _, trigger in _webhooks(definition)):
        return definition
    redacted = copy.deepcopy(definition)
    for _, trigger in _webhooks(redacted):
        if trigger.get("secret"):
            trigger["secret"] = REDACTED
    return redacted


def keep_secrets(definition, stored):
    """`definition` (as sent by a client) with each REDACTED webhook secret replaced by the
    secret `stored` (the definition saved before, or None) holds for that trigger."""
    incoming = _webhooks(definition)
    if not any(trigger.get("secret") == REDACTED for _, trigger in incoming):
        return definition
    secrets = [trigger.get("secret") for _, trigger in _webhooks(stored)]
    restored = copy.deepcopy(definition)
    for position, (index, trigger) in enumerate(_webhooks(restored)):
        if trigger.get("secret") != REDACTED:
            continue
        secret = secrets[position] if position < len(secrets) else None
        if not isinstance(secret, str) or not secret or secret == REDACTED:
            raise MissingSecret(index)
        trigger["secret"] = secret
    return restored
