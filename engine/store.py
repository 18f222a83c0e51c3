"""The persistence boundary of the engine: what the executor needs, nothing more.

`runs/store.py` implements it with Django models. Every `commit` is one transaction that
first checks the caller's fencing token: a worker that lost its lease gets `LostLease` and
writes nothing.
"""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from engine.events import NewEvent
from engine.statuses import RunStatus, StepStatus


@dataclass(slots=True)
class StepRecord:
    """The latest attempt of one step, as stored."""

    step_id: str
    step_type: str
    attempt: int
    status: StepStatus
    input: dict | None = None
    output: Any = None
    error: str = ""
    waiting_for: str = ""
    wake_at: datetime | None = None
    resume_data: dict | None = None
    started_at: datetime | None = None


@dataclass(slots=True)
class RunState:
    run_id: str
    fence: int
    status: RunStatus
    definition: dict
    input: dict
    context: dict
    max_concurrency: int
    timeout_seconds: float | None
    started_at: datetime | None
    now: datetime
    """The database's clock when the state was read."""
    steps: dict[str, StepRecord] = field(default_factory=dict)
    """Latest attempt per step id."""
    state: dict = field(default_factory=dict)
    """The workflow's persistent state (`{{ state.key }}`) when the run was loaded."""
    parent_run_id: str | None = None
    """The run whose invoke_workflow step started this one: its end resumes that step."""


@dataclass(slots=True)
class StepWrite:
    """Insert (insert=True) or update the step run row (step_id, attempt)."""

    step_id: str
    attempt: int
    fields: dict[str, Any]
    insert: bool = False


@dataclass(slots=True)
class ChildStart:
    """A child run to create in the same transaction as its parent step's wait: the child
    cannot finish (and resume the step) before the step is durably waiting for it."""

    child_run_id: str
    step_id: str
    attempt: int
    workflow_id: str
    """The exact workflow version row to run."""
    input: dict


@dataclass(slots=True)
class Performed:
    """The store's answer to a step's `Effect`: the step's output, and the workflow state
    after the write when the effect wrote it."""

    output: dict
    state: dict | None = None


@dataclass(slots=True)
class Batch:
    """Everything that changes in one transaction."""

    steps: list[StepWrite] = field(default_factory=list)
    events: list[NewEvent] = field(default_factory=list)
    run: dict[str, Any] = field(default_factory=dict)
    """Run fields to set (status, error, started_at, completed_at, wake_at, ...)."""
    context: dict = field(default_factory=dict)
    """Context keys written by this batch (step outputs), merged into the stored context."""
    release: bool = False
    """Give up the lease (the run is parked or finished)."""
    unless_resumed: bool = False
    """Abort (commit nothing, return resumed=True) if a waiting step got resume data."""
    children: list[ChildStart] = field(default_factory=list)
    """Child runs to start (invoke_workflow with wait)."""
    notify_parent: bool = False
    """The run finishes in this batch and has a parent run: resume the parent's step."""

    def step_writes(self) -> list[StepWrite]:
        """`steps` with the writes to one row merged (a step that started and finished in
        this batch is one insert): later fields win, the row keeps its first position."""
        merged: dict[tuple[str, int], StepWrite] = {}
        for write in self.steps:
            key = (write.step_id, write.attempt)
            first = merged.get(key)
            if first is None or write.insert:
                merged[key] = StepWrite(
                    write.step_id, write.attempt, dict(write.fields), write.insert
                )
            else:
                first.fields.update(write.fields)
        return list(merged.values())

    def __bool__(self) -> bool:
        return bool(self.steps or self.events or self.run or self.context or self.children)


@dataclass(slots=True)
class CommitResult:
    events: list[NewEvent]
    resumed: bool = False


class Store(Protocol):
    async def load(self, run_id: str, fence: int) -> RunState:
        """The run with its definition and the latest attempt of each step."""

    async def commit(self, run_id: str, fence: int, batch: Batch) -> CommitResult:
        """Apply the batch in one transaction; raise LostLease if `fence` is stale."""

    async def resumed_steps(self, run_id: str) -> list[StepRecord]:
        """Waiting steps that have received resume data (an approval, an event)."""

    async def perform(
        self, run_id: str, fence: int, step_id: str, attempt: int, kind: str, request: dict
    ) -> Performed:
        """Do the database work a step asked for with `Effect` (start a run, deliver an
        event, write the workflow state), idempotent per (run, step, attempt). Raises
        StepError when it cannot, or `Suspend` when the step must wait (a child run)."""
