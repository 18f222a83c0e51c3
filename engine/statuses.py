"""Every status and type name of Flow Matrx, in one place.

Plain `StrEnum`s so the engine (which imports no Django) and the models (which turn
them into field choices with `choices()`) share one source of truth.
"""

from enum import StrEnum


class _Choices(StrEnum):
    @classmethod
    def choices(cls) -> list[tuple[str, str]]:
        return [(member.value, member.value.replace("_", " ").capitalize()) for member in cls]


class WorkflowStatus(_Choices):
    DRAFT = "draft"
    PUBLISHED = "published"
    ARCHIVED = "archived"


class RunStatus(_Choices):
    PENDING = "pending"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_finished(self) -> bool:
        return self in FINISHED_RUN_STATUSES


FINISHED_RUN_STATUSES = frozenset({RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED})


class StepStatus(_Choices):
    PENDING = "pending"
    RUNNING = "running"
    WAITING = "waiting"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


class TriggerType(_Choices):
    MANUAL = "manual"
    WEBHOOK = "webhook"
    SCHEDULE = "schedule"
    EVENT = "event"
    API = "api"
    WORKFLOW = "workflow"
    """Started by another run's invoke_workflow step (the run's `parent_run`)."""


class WaitingFor(_Choices):
    APPROVAL = "approval"
    EVENT = "event"
    DELAY = "delay"
    BACKOFF = "backoff"
    RUN = "run"
    """An invoke_workflow step waiting for its child run to finish."""


class EventType(_Choices):
    RUN_STARTED = "run.started"
    RUN_COMPLETED = "run.completed"
    RUN_FAILED = "run.failed"
    RUN_PAUSED = "run.paused"
    RUN_RESUMED = "run.resumed"
    RUN_CANCELLED = "run.cancelled"
    STEP_STARTED = "step.started"
    STEP_COMPLETED = "step.completed"
    STEP_FAILED = "step.failed"
    STEP_SKIPPED = "step.skipped"
    STEP_WAITING = "step.waiting"
    STEP_RETRYING = "step.retrying"
    CONTEXT_UPDATED = "context.updated"
    STATE_UPDATED = "state.updated"
    JOIN_IGNORED = "step.join_ignored"
