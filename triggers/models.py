"""Webhook endpoints and deliveries, and cron schedules.

A workflow's triggers live in its definition (`settings.triggers`); these rows hold what
the definition cannot: the webhook's secret URL token (one per workflow, the same for all
its versions), the deliveries seen (replay refusal and idempotency), and each schedule's
runtime state (enabled, next fire time), kept in step with the newest published version
by `triggers.sync`.
"""

import secrets

from django.db import models
from django.utils import timezone


def new_token() -> str:
    """An unguessable URL token: 32 random bytes (256 bits), URL-safe base64 (43 chars)."""
    return secrets.token_urlsafe(32)


class WebhookEndpoint(models.Model):
    """The webhook URL `/hooks/<token>` of one workflow (all of its versions)."""

    lineage = models.UUIDField(unique=True, help_text="The workflow (its versions' lineage).")
    token = models.CharField(max_length=64, unique=True, default=new_token, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"/hooks/{self.token[:6]}… ({self.lineage})"


class DeliveryKind(models.TextChoices):
    SIGNATURE = "signature", "Signature"
    DELIVERY_ID = "delivery_id", "Delivery id"
    IDEMPOTENCY_KEY = "idempotency_key", "Idempotency key"


class WebhookDelivery(models.Model):
    """One key of an accepted webhook request: its signature, its `X-Delivery-Id`, its
    `X-Idempotency-Key`. Unique per endpoint, inserted in the transaction that starts the
    run, so a replay (or a racing duplicate) finds the key taken and starts nothing."""

    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    kind = models.CharField(max_length=20, choices=DeliveryKind.choices)
    key = models.CharField(max_length=255)
    received_at = models.DateTimeField(default=timezone.now)
    run = models.ForeignKey(
        "runs.Run", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-received_at"]
        verbose_name_plural = "webhook deliveries"
        indexes = [models.Index(fields=["kind", "received_at"], name="webhook_delivery_age")]
        constraints = [
            models.UniqueConstraint(
                fields=["endpoint", "kind", "key"], name="webhook_delivery_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.key[:16]}"


class Schedule(models.Model):
    """The runtime state of one schedule trigger of a workflow's active version."""

    lineage = models.UUIDField(db_index=True)
    workflow = models.ForeignKey(
        "workflows.Workflow",
        on_delete=models.CASCADE,
        related_name="schedules",
        help_text="The published version whose trigger this is (the newest published one).",
    )
    trigger_index = models.PositiveIntegerField(help_text="Its position in settings.triggers.")
    cron = models.CharField(max_length=200)
    timezone = models.CharField(max_length=64, default="UTC")
    input = models.JSONField(default=dict, blank=True)
    catch_up = models.BooleanField(default=False)
    enabled = models.BooleanField(default=True)
    next_fire_at = models.DateTimeField(null=True, blank=True, db_index=True)
    last_fired_at = models.DateTimeField(null=True, blank=True)
    last_run = models.ForeignKey(
        "runs.Run", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["lineage", "trigger_index"]

    def __str__(self) -> str:
        return f"{self.cron} ({self.timezone})"
