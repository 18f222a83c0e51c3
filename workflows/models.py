"""Workflows: the canvas definition, stored verbatim, one row per version.

Every version of one workflow shares a `lineage` (the id of its first version). Only a
draft may be edited; publishing freezes a version; editing a published workflow means
making a new draft version (`new_version`). Runs point at the exact version row they ran.
"""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from engine.statuses import WorkflowStatus


def empty_definition() -> dict:
    return {"nodes": [], "edges": [], "viewport": {"x": 0, "y": 0, "zoom": 1}, "settings": {}}


class WorkflowQuerySet(models.QuerySet):
    def versions_of(self, lineage: uuid.UUID) -> "WorkflowQuerySet":
        return self.filter(lineage=lineage).order_by("-version")

    def latest_versions(self) -> "WorkflowQuerySet":
        """One row per workflow: its highest version."""
        newest = self.model.objects.filter(lineage=models.OuterRef("lineage")).order_by("-version")
        return self.filter(pk=models.Subquery(newest.values("pk")[:1]))

    def published(self) -> "WorkflowQuerySet":
        return self.filter(status=WorkflowStatus.PUBLISHED)


class Workflow(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    lineage = models.UUIDField(
        db_index=True, help_text="Shared by every version of one workflow (first version's id)."
    )
    version = models.PositiveIntegerField(default=1)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    definition = models.JSONField(default=empty_definition)
    input_schema = models.JSONField(null=True, blank=True)
    status = models.CharField(
        max_length=16, choices=WorkflowStatus.choices(), default=WorkflowStatus.DRAFT
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="workflows",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    published_at = models.DateTimeField(null=True, blank=True)

    objects = WorkflowQuerySet.as_manager()

    class Meta:
        ordering = ["name", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["lineage", "version"], name="workflow_version_unique"),
            models.UniqueConstraint(
                fields=["lineage"],
                condition=Q(status="draft"),
                name="workflow_one_draft_per_lineage",
            ),
        ]
        indexes = [models.Index(fields=["status", "name"], name="workflow_status_name")]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"

    def save(self, *args, **kwargs):
        if self.lineage is None:
            self.lineage = self.id
        super().save(*args, **kwargs)

    @property
    def is_draft(self) -> bool:
        return self.status == WorkflowStatus.DRAFT

    @property
    def nodes(self) -> list[dict]:
        return list((self.definition or {}).get("nodes", []))

    @property
    def workflow_settings(self) -> dict:
        return dict((self.definition or {}).get("settings") or {})
