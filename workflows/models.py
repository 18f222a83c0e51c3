"""Workflows: the canvas definition, stored verbatim, one row per version.

Every version of one workflow shares a `lineage` (the id of its first version). Only a
draft may be edited; publishing freezes a version; editing a published workflow means
making a new draft version (`new_version`). Runs point at the exact version row they ran.
"""

import uuid

from django.conf import settings
from django.db import models, transaction
from django.db.models import Max, Q
from django.utils import timezone

from engine.errors import InvalidDefinition, StateConflict
from engine.statuses import WorkflowStatus
from engine.validation import Problem, validate_definition


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

    def validate(self) -> list[Problem]:
        """Every problem of the definition (empty when it can be published and run)."""
        return validate_definition(self.definition)

    def check_runnable(self) -> None:
        """Refuse to run an archived version, or a draft whose definition has problems.
        (A published version was validated when it was published.)"""
        if self.status == WorkflowStatus.ARCHIVED:
            raise StateConflict(f"{self} is archived; run a published version or a draft")
        if self.is_draft:
            problems = self.validate()
            if problems:
                raise InvalidDefinition(problems, "the draft cannot run: " + problems[0].msg)

    def publish(self) -> "Workflow":
        """Validate and freeze this draft as its version."""
        if not self.is_draft:
            raise StateConflict(
                f"{self} is {self.status}; only a draft can be published "
                "(make a new version to change it)"
            )
        problems = self.validate()
        if problems:
            raise InvalidDefinition(problems, "cannot publish: " + problems[0].msg)
        self.status = WorkflowStatus.PUBLISHED
        self.published_at = timezone.now()
        self.save(update_fields=["status", "published_at", "updated_at"])
        from triggers.sync import sync_triggers  # here: triggers imports this module

        sync_triggers(self)
        return self

    def new_version(self, created_by=None) -> "Workflow":
        """A new draft (version N+1) of this workflow, copied from this version."""
        with transaction.atomic():
            versions = Workflow.objects.select_for_update().filter(lineage=self.lineage)
            draft = versions.filter(status=WorkflowStatus.DRAFT).first()
            if draft is not None:
                raise StateConflict(
                    f"version {draft.version} of this workflow is already a draft; edit it"
                )
            latest = versions.aggregate(latest=Max("version"))["latest"] or 0
            return Workflow.objects.create(
                lineage=self.lineage,
                version=latest + 1,
                name=self.name,
                description=self.description,
                definition=self.definition,
                input_schema=self.input_schema,
                created_by=created_by or self.created_by,
            )

    def editable_draft(self, created_by=None) -> "Workflow":
        """Where an edit of this version goes: this version when it is a draft, else the
        workflow's draft (a new version copied from this one when it has none)."""
        if self.is_draft:
            return self
        draft = Workflow.objects.filter(lineage=self.lineage, status=WorkflowStatus.DRAFT).first()
        return draft if draft is not None else self.new_version(created_by=created_by)

    def replace_settings(self, settings: dict) -> None:
        """Store `settings` as this draft's definition settings (triggers, flow control).
        Call in a transaction, on a row locked with select_for_update."""
        if not self.is_draft:
            raise StateConflict(f"{self} is {self.status}; only a draft can be edited")
        self.definition = {**(self.definition or {}), "settings": settings}
        self.save(update_fields=["definition", "updated_at"])

    def duplicate(self, created_by=None, name: str | None = None) -> "Workflow":
        """A new workflow (its own lineage, version 1, a draft) with this definition."""
        return Workflow.objects.create(
            name=name or f"{self.name} (copy)",
            description=self.description,
            definition=self.definition,
            input_schema=self.input_schema,
            created_by=created_by,
        )

    def archive(self) -> "Workflow":
        """Stop this published version's triggers; its runs stay."""
        if self.status != WorkflowStatus.PUBLISHED:
            raise StateConflict(f"{self} is {self.status}; only a published version is archived")
        self.status = WorkflowStatus.ARCHIVED
        self.save(update_fields=["status", "updated_at"])
        from triggers.sync import sync_triggers  # here: triggers imports this module

        sync_triggers(self)
        return self


class WorkflowState(models.Model):
    """A workflow's persistent key-value state, shared by the runs of all its versions:
    read in templates as `{{ state.key }}`, written by `set_state` steps
    (runs/composition.py, under this row's lock)."""

    lineage = models.UUIDField(primary_key=True)
    data = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"state of {self.lineage}"
