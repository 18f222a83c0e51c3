"""Run event types and their payloads (SPEC §5), documented in this one place.

Every state transition writes exactly one event in the same transaction as the change;
the store numbers them (per-run `seq`, gapless) and publishes them after commit. The
envelope on the wire is `{"seq", "event_type", "run_id", "step_id", "timestamp", "payload"}`.
"""

import json
from dataclasses import dataclass, field
from typing import Any, NotRequired, TypedDict

from engine.statuses import EventType

SUMMARY_LIMIT = 500


class RunStarted(TypedDict):
    status: str


class RunCompleted(TypedDict):
    status: str
    duration_ms: int | None


class RunFailed(TypedDict):
    status: str
    error: str
    failed_step_id: NotRequired[str]
    duration_ms: int | None


class RunPaused(TypedDict):
    status: str
    waiting_step_id: str
    reason: str


class RunResumed(TypedDict):
    status: str
    resumed_step_id: str | None
    reason: NotRequired[str]
    """"resumed" (approval or event), "timer" (a paused step's timeout fired), "retry"."""


class RunCancelled(TypedDict):
    status: str
    reason: NotRequired[str]


class StepStarted(TypedDict):
    step_id: str
    step_type: str
    step_label: str
    attempt: int


class StepCompleted(TypedDict):
    step_id: str
    step_type: str
    status: str
    output_summary: str
    duration_ms: int | None
    attempt: NotRequired[int]


class StepFailed(TypedDict):
    step_id: str
    step_type: str
    status: str
    error: str
    attempt: int


class StepSkipped(TypedDict):
    step_id: str
    status: str
    reason: str


class StepWaiting(TypedDict):
    step_id: str
    step_type: str
    status: str
    waiting_for: str
    """approval, event, delay, backoff or run (a child run of invoke_workflow)."""
    label: str
    wake_at: NotRequired[str | None]


class StepRetrying(TypedDict):
    step_id: str
    attempt: int
    """The attempt that failed."""
    max_attempts: int
    backoff_seconds: float
    error: str


class ContextUpdated(TypedDict):
    step_id: str
    keys: list[str]


class StateUpdated(TypedDict):
    """A set_state step wrote the workflow's state (same transaction as the write)."""

    step_id: str
    attempt: int
    keys: list[str]
    values: dict
    """The written keys' new values."""


class JoinIgnored(TypedDict):
    """A parent of a `join: any` node completed after the node had already started."""

    step_id: str
    """The join node."""
    parent_step_id: str
    reason: str


PAYLOADS: dict[EventType, type] = {
    EventType.RUN_STARTED: RunStarted,
    EventType.RUN_COMPLETED: RunCompleted,
    EventType.RUN_FAILED: RunFailed,
    EventType.RUN_PAUSED: RunPaused,
    EventType.RUN_RESUMED: RunResumed,
    EventType.RUN_CANCELLED: RunCancelled,
    EventType.STEP_STARTED: StepStarted,
    EventType.STEP_COMPLETED: StepCompleted,
    EventType.STEP_FAILED: StepFailed,
    EventType.STEP_SKIPPED: StepSkipped,
    EventType.STEP_WAITING: StepWaiting,
    EventType.STEP_RETRYING: StepRetrying,
    EventType.CONTEXT_UPDATED: ContextUpdated,
    EventType.STATE_UPDATED: StateUpdated,
    EventType.JOIN_IGNORED: JoinIgnored,
}


@dataclass(slots=True)
class NewEvent:
    """An event to append; the store gives it its seq and timestamp."""

    event_type: EventType
    payload: dict[str, Any]
    step_id: str = ""
    seq: int = 0
    timestamp: str = field(default="")


def summarize(value: Any, limit: int = SUMMARY_LIMIT) -> str:
    """A short JSON rendering of a step output for the timeline."""
    try:
        text = json.dumps(value, default=str, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
