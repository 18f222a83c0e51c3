"""The run executor: drives one activation of one run from its checkpoint (SPEC §3).

An activation loads the run's state, starts every ready step (bounded by the run's
max_concurrency, each step as soon as its own parents are done), and checkpoints each
transition through the store: the step run rows, the context and the events of all the
transitions that happened together go into one transaction, so a crash repeats at most
the steps that were in flight. It ends when the run finishes, or when nothing can
proceed until a person, an event or a timer does: then the run is parked (released)
with a wake-up time, and any worker continues it later.
"""

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from engine.errors import LostLease, NonRetryableError, StepError
from engine.events import NewEvent, summarize
from engine.expressions import ExpressionError
from engine.graph import Graph
from engine.policy import StepPolicy
from engine.registry import Effect, Registry, StepType, Suspend
from engine.registry import registry as default_registry
from engine.scope import Scope
from engine.statuses import EventType, RunStatus, StepStatus, WaitingFor
from engine.store import Batch, RunState, StepRecord, StepWrite, Store
from engine.templates import TemplateError, render

logger = logging.getLogger("engine")

# Timed waits shorter than this are waited out in this process (the state is already
# durable, so a crash loses nothing); longer ones park the run and release the worker.
DEFAULT_PARK_AFTER_SECONDS = 2.0
LINGER_SECONDS = 0.003
"""How long finished transitions may wait for quick neighbours to share their commit."""

ACTIVE = (StepStatus.PENDING, StepStatus.RUNNING, StepStatus.WAITING)
TIMED_WAITS = (WaitingFor.DELAY, WaitingFor.BACKOFF)


@dataclass(slots=True)
class Outcome:
    step_id: str
    attempt: int
    output: Any = None
    error: str | None = None
    retryable: bool = True
    suspend: Suspend | None = None
    state: dict | None = None
    """The workflow state after a set_state step's write."""


class Executor:
    def __init__(
        self,
        store: Store,
        run_id: str,
        fence: int,
        *,
        registry: Registry = default_registry,
        park_after_seconds: float = DEFAULT_PARK_AFTER_SECONDS,
    ):
        self.store = store
        self.run_id = str(run_id)
        self.fence = fence
        self.registry = registry
        self.park_after = park_after_seconds
        self._poked = asyncio.Event()

    # -- public -----------------------------------------------------------------------

    def poke(self) -> None:
        """Something changed outside (a step was resumed): look again soon."""
        self._poked.set()

    async def run(self) -> RunStatus:
        """Execute until the run finishes or parks. Returns the run's status then."""
        state = await self.store.load(self.run_id, self.fence)
        self._setup(state)
        try:
            return await self._loop()
        finally:
            orphans = [*self.tasks.values(), *self.cancelled_tasks]
            for task in orphans:
                task.cancel()
            if orphans:
                await asyncio.gather(*orphans, return_exceptions=True)
            if self.committing is not None:  # a commit thread cannot be interrupted
                await asyncio.gather(self.committing, return_exceptions=True)

    # -- state --------------------------------------------------------------------------

    def _setup(self, state: RunState) -> None:
        self.state = state
        self.graph = Graph.from_definition(state.definition)
        self.nodes = self.graph.nodes
        self.context: dict = dict(state.context or {})
        self.context["input"] = state.input
        self._context_order = {key: i for i, key in enumerate(self.context)}
        self.steps: dict[str, StepRecord] = dict(state.steps)
        self.policies = {nid: StepPolicy.from_node(n) for nid, n in self.nodes.items()}
        self.workflow_state: dict = state.state or {}
        # `join: any` nodes, and for each parent the join-any children it can start.
        self.join_any = self.graph.join_any_nodes()
        self._join_any_children: dict[str, tuple[str, ...]] = {}
        for node_id in self.join_any:
            for parent in self.graph.parents(node_id):
                self._join_any_children[parent] = (
                    *self._join_any_children.get(parent, ()),
                    node_id,
                )
        self.clock_offset = state.now - datetime.now(UTC)
        self.status = RunStatus(state.status)
        self.started_at = state.started_at
        self.deadline = None
        self.tasks: dict[str, asyncio.Task] = {}
        self.cancelled_tasks: list[asyncio.Task] = []
        self.done: set[str] = set()
        self.dead: set[str] = set()
        self.batch = Batch()
        self._batch_since: float | None = None
        self._idle_spins = 0
        self.committing: asyncio.Task | None = None
        # Checkpoints are numbered as they are taken; a step whose database work bypasses
        # the checkpoints (an Effect) waits until the one holding its start is written.
        self._batches_taken = 0
        self._batches_written = 0
        self._written = asyncio.Event()
        self._started_in: dict[str, int] = {}
        losing_edges = []
        for step_id, record in self.steps.items():
            if step_id not in self.nodes:
                continue
            if record.status in (StepStatus.COMPLETED, StepStatus.SKIPPED):
                self.done.add(step_id)
                if record.status == StepStatus.COMPLETED and self._type_of(step_id) == "condition":
                    losing_edges += self._losing_edges(step_id, record.output)
            elif record.status == StepStatus.FAILED and self.policies[step_id].on_error != "fail":
                self.done.add(step_id)
        self.dead = self.graph.dead_nodes(losing_edges) - self.done
        # Only these can change readiness: the steps whose own record changed and their
        # children. Keeps each turn of the loop proportional to what happened, not to the
        # size of the graph.
        self._order = {step_id: i for i, step_id in enumerate(self.graph.node_ids)}
        self._candidates: set[str] = set(self.graph.node_ids)
        self._waiting: set[str] = {
            r.step_id for r in self.steps.values() if r.status == StepStatus.WAITING
        }

    def now(self) -> datetime:
        """The database's clock, as estimated from the offset measured at load."""
        return datetime.now(UTC) + self.clock_offset

    def _type_of(self, step_id: str) -> str:
        return self.graph.node_type(step_id)

    def _label(self, step_id: str) -> str:
        data = self.nodes[step_id].get("data") or {}
        label = data.get("label")
        return label if isinstance(label, str) and label else step_id

    def _losing_edges(self, step_id: str, output: Any) -> list[str]:
        branch = output.get("branch") if isinstance(output, dict) else None
        return [e.id for e in self.graph.out_edges(step_id) if e.handle != branch]

    def _emit(self, event_type: EventType, payload: dict, step_id: str = "") -> None:
        if self._batch_since is None:
            self._batch_since = time.monotonic()
        self.batch.events.append(NewEvent(event_type, payload, step_id))

    def _write_step(self, step_id: str, attempt: int, insert: bool = False, **fields) -> None:
        self.batch.steps.append(StepWrite(step_id, attempt, fields, insert))
        record = self.steps.get(step_id)
        if insert or record is None or record.attempt != attempt:
            record = StepRecord(
                step_id=step_id,
                step_type=fields.get("step_type", self._type_of(step_id)),
                attempt=attempt,
                status=fields.get("status", StepStatus.PENDING),
            )
            self.steps[step_id] = record
        for name, value in fields.items():
            if hasattr(record, name):
                setattr(record, name, value)
        if record.status == StepStatus.WAITING:
            self._waiting.add(step_id)
        else:
            self._waiting.discard(step_id)
        if step_id in self.nodes:
            self._candidates.add(step_id)
            self._candidates.update(self.graph.children(step_id))

    def _set_output(self, step_id: str, output: Any) -> None:
        self.context[step_id] = output
        self._context_order.setdefault(step_id, len(self._context_order))
        self.batch.context[step_id] = output
        self._emit(EventType.CONTEXT_UPDATED, {"step_id": step_id, "keys": [step_id]}, step_id)

    def _duration_ms(self) -> int | None:
        if self.started_at is None:
            return None
        return int((self.now() - self.started_at).total_seconds() * 1000)

    # -- the loop -------------------------------------------------------------------------

    async def _loop(self) -> RunStatus:
        if self.status.is_finished:
            return self.status
        self._begin()
        while not self._check_deadline():
            self._process_waiting()
            if self.status.is_finished:
                break
            self._start_ready()
            if self.status.is_finished:
                break
            if self._linger():
                await asyncio.sleep(0)  # steps that finish at once join this checkpoint
                self._idle_spins = 0 if self._harvest() else self._idle_spins + 1
                continue
            self._idle_spins = 0
            if not self.tasks and self._all_finished():
                self._finish_completed()  # in the same checkpoint as the last steps
                break
            self._commit_in_background()
            if self.tasks or self.committing is not None:
                await self._wait_for_outcomes()
                continue
            next_wake = self._next_wake()
            if next_wake is not None and next_wake - self.now() <= timedelta(
                seconds=self.park_after
            ):
                await self._sleep_until(next_wake)
            elif await self._park(next_wake):
                break
        await self._flush()
        return self.status

    def _begin(self) -> None:
        now = self.now()
        if self.status == RunStatus.PENDING:
            self.status = RunStatus.RUNNING
            self.started_at = now
            self.batch.run.update(status=RunStatus.RUNNING, started_at=now, wake_at=None)
            self._emit(EventType.RUN_STARTED, {"status": RunStatus.RUNNING})
        elif self.status == RunStatus.PAUSED:
            self.status = RunStatus.RUNNING
            self.batch.run.update(status=RunStatus.RUNNING, wake_at=None)
            waiting = [r for r in self.steps.values() if r.status == StepStatus.WAITING]
            # A resume (approval, event) delivered while the run waited for a concurrency
            # slot (runs/lifecycle.py `resume`), or a timer.
            decided = next((r.step_id for r in waiting if r.resume_data is not None), None)
            resumed = decided or next((r.step_id for r in waiting), None)
            self._emit(
                EventType.RUN_RESUMED,
                {
                    "status": RunStatus.RUNNING,
                    "resumed_step_id": resumed,
                    "reason": "resumed" if decided else "timer",
                },
            )
        else:
            self.batch.run["wake_at"] = None
        if self.state.timeout_seconds and self.started_at is not None:
            self.deadline = self.started_at + timedelta(seconds=self.state.timeout_seconds)

    def _check_deadline(self) -> bool:
        """Fail the run when its timeout has passed. True when the run is finished."""
        if self.status.is_finished:
            return True
        if self.deadline is None or self.now() < self.deadline:
            return False
        self._fail_run(f"run timed out after {self.state.timeout_seconds:g} seconds")
        return True

    def _all_finished(self) -> bool:
        if len(self.done) + len(self.dead) < len(self.nodes):
            return False
        return all(nid in self.done or nid in self.dead for nid in self.graph.node_ids)

    def _waiting_records(self) -> list[StepRecord]:
        waiting = sorted(self._waiting, key=lambda step_id: self._order.get(step_id, -1))
        return [self.steps[step_id] for step_id in waiting]

    def _next_wake(self) -> datetime | None:
        wakes = [
            r.wake_at
            for r in self._waiting_records()
            if r.wake_at is not None and r.step_id in self.nodes
        ]
        if self.deadline is not None:
            wakes.append(self.deadline)
        return min(wakes) if wakes else None

    async def _sleep_until(self, when: datetime) -> None:
        delay = max(0.0, (when - self.now()).total_seconds())
        self._poked.clear()
        try:
            await asyncio.wait_for(self._poked.wait(), timeout=delay)
        except TimeoutError:
            pass
        else:
            await self._pick_up_resumes()

    async def _pick_up_resumes(self) -> None:
        for record in await self.store.resumed_steps(self.run_id):
            current = self.steps.get(record.step_id)
            if current and current.attempt == record.attempt:
                current.resume_data = record.resume_data

    async def _wait_for_outcomes(self) -> None:
        next_wake = self._next_wake()
        timeout = None
        if next_wake is not None:
            timeout = max(0.0, (next_wake - self.now()).total_seconds())
        self._poked.clear()
        poke = asyncio.ensure_future(self._poked.wait())
        waits = [*self.tasks.values(), poke]
        if self.committing is not None:
            waits.append(self.committing)
        try:
            done, _ = await asyncio.wait(
                waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            poke.cancel()
        if self.committing is not None and self.committing.done():
            committing, self.committing = self.committing, None
            committing.result()  # LostLease and database errors stop the run here
        if poke in done:
            await self._pick_up_resumes()
        self._harvest()

    def _harvest(self) -> int:
        """Apply the outcomes of the steps that finished. Returns how many."""
        finished = 0
        for step_id, task in list(self.tasks.items()):
            if task.done():
                del self.tasks[step_id]
                self._apply(task.result())
                finished += 1
        return finished

    def _linger(self) -> bool:
        """Hold the next checkpoint back while running steps keep finishing at once (no-op
        and pure steps), for at most LINGER_SECONDS: transitions that happen within a few
        milliseconds of each other then share one commit. A step that is still running
        after two turns of the event loop is doing real work: write without waiting."""
        if self.committing is not None or not self.tasks or not self.batch:
            return False
        if self._idle_spins >= 2:
            return False
        if self._batch_since is None:
            self._batch_since = time.monotonic()
        return time.monotonic() - self._batch_since < LINGER_SECONDS

    def _take_batch(self) -> Batch:
        self._batch_since = None
        self._batches_taken += 1
        batch, self.batch = self.batch, Batch()
        return batch

    def _mark_written(self, number: int) -> None:
        self._batches_written = max(self._batches_written, number)
        self._written.set()
        self._written = asyncio.Event()

    def _commit_in_background(self) -> None:
        """Group commit: while one checkpoint is being written, steps keep starting and
        finishing, and their transitions go together into the next one. One commit is in
        flight at a time, so events keep their order; a crash repeats at most the steps
        whose completion was not yet written (side effects are at-least-once anyway)."""
        if self.committing is None and self.batch:
            batch = self._take_batch()
            number = self._batches_taken
            self.committing = asyncio.ensure_future(
                self.store.commit(self.run_id, self.fence, batch)
            )
            self.committing.add_done_callback(
                lambda done: done.cancelled() or done.exception() or self._mark_written(number)
            )

    async def _flush(self) -> None:
        """Write everything: the commit in flight, then what accumulated meanwhile."""
        if self.committing is not None:
            committing, self.committing = self.committing, None
            await committing
        if self.batch:
            await self.store.commit(self.run_id, self.fence, self._take_batch())
            self._mark_written(self._batches_taken)

    async def _park(self, next_wake: datetime | None) -> bool:
        """Release the run until a timer, a person or an event. False if a resume came in."""
        waiting = [r for r in self.steps.values() if r.status == StepStatus.WAITING]
        timed = [r for r in waiting if r.waiting_for in TIMED_WAITS]
        batch = self.batch
        batch.release = True
        batch.unless_resumed = True
        batch.run["wake_at"] = next_wake
        if not timed and waiting:
            first = waiting[0]
            reason = self._pause_reason(first)
            if self.status != RunStatus.PAUSED:
                batch.run["status"] = RunStatus.PAUSED
                self._emit(
                    EventType.RUN_PAUSED,
                    {
                        "status": RunStatus.PAUSED,
                        "waiting_step_id": first.step_id,
                        "reason": reason,
                    },
                )
        elif not waiting:
            # Nothing waits and nothing is ready: parents that failed without a policy
            # would have failed the run, so this is a graph the engine cannot finish.
            stuck = [n for n in self.graph.node_ids if n not in self.done and n not in self.dead]
            self._fail_run(f"no step can run: {', '.join(stuck)} never became ready")
            return True
        self.batch = Batch()
        result = await self.store.commit(self.run_id, self.fence, batch)
        if result.resumed:
            # Keep the unsent events for the next flush; the run stays ours.
            batch.release = batch.unless_resumed = False
            batch.run.pop("status", None)
            batch.run.pop("wake_at", None)
            batch.events = [e for e in batch.events if e.event_type != EventType.RUN_PAUSED]
            self.batch = batch
            await self._pick_up_resumes()
            return False
        if "status" in batch.run:
            self.status = RunStatus(batch.run["status"])
        return True

    @staticmethod
    def _pause_reason(record: StepRecord) -> str:
        config = record.input or {}
        if record.waiting_for == WaitingFor.APPROVAL:
            return f"waiting for approval: {config.get('prompt', '')}".rstrip(": ")
        if record.waiting_for == WaitingFor.RUN:
            child = (record.output or {}).get("child_run_id", "")
            return f"waiting for child run {child}".rstrip()
        return f"waiting for event {config.get('event_name', '')}"

    # -- waiting steps ---------------------------------------------------------------------

    def _process_waiting(self) -> None:
        now = self.now()
        for record in self._waiting_records():
            step_id = record.step_id
            if step_id not in self.nodes or step_id in self.tasks:
                continue
            if record.status == StepStatus.WAITING:
                if record.resume_data is not None:
                    self._resume_step(record)
                elif record.wake_at is not None and record.wake_at <= now:
                    self._wake_step(record)
            if self.status.is_finished:
                return

    def _resume_step(self, record: StepRecord) -> None:
        step_type = self.registry.get(record.step_type)
        data, record.resume_data = record.resume_data, None
        if step_type is None or step_type.resume is None:
            self._step_failed(record.step_id, record.attempt, "this step cannot be resumed")
            return
        try:
            output = step_type.resume(record.input or {}, data)
        except StepError as exc:
            self._step_failed(record.step_id, record.attempt, str(exc), retryable=exc.retryable)
            return
        self._step_completed(record.step_id, record.attempt, output)

    def _wake_step(self, record: StepRecord) -> None:
        if record.waiting_for == WaitingFor.BACKOFF:
            record.status = StepStatus.PENDING  # the next attempt starts now
            self._waiting.discard(record.step_id)
            self._candidates.add(record.step_id)
            return
        step_type = self.registry.get(record.step_type)
        try:
            if step_type is None or step_type.wake is None:
                raise NonRetryableError("this step cannot wake")
            output = step_type.wake(record.input or {})
        except StepError as exc:
            self._step_failed(record.step_id, record.attempt, str(exc), retryable=False)
            return
        self._step_completed(record.step_id, record.attempt, output)

    # -- starting steps -----------------------------------------------------------------------

    def _ready(self) -> list[str]:
        """The candidates that can start now, in definition order. A candidate that is
        ready but over the concurrency limit stays a candidate for the next turn."""
        ready = []
        done, dead = self.done, self.dead
        for step_id in sorted(self._candidates, key=self._order.__getitem__):
            record = self.steps.get(step_id)
            if (
                step_id in done
                or step_id in dead
                or step_id in self.tasks
                or (record is not None and record.status == StepStatus.WAITING)
                or (record is not None and record.status == StepStatus.FAILED)  # run failing
            ):
                self._candidates.discard(step_id)
            elif self.join_any and step_id in self.join_any:
                if self._join_any_ready(step_id):
                    ready.append(step_id)
                else:
                    self._candidates.discard(step_id)
            elif not all(p in done or p in dead for p in self.graph.parents(step_id)):
                self._candidates.discard(step_id)
            else:
                ready.append(step_id)
        return ready

    def _join_any_ready(self, step_id: str) -> bool:
        """A `join: any` node is ready once one parent has completed (or failed with
        on_error continue); when every parent is done or dead and none completed, every
        parent was skipped: the node is skipped too."""
        parents = self.graph.parents(step_id)
        if any(p in self.done and self.steps[p].status != StepStatus.SKIPPED for p in parents):
            return True
        if all(p in self.done or p in self.dead for p in parents):
            self._skip(step_id, "join any: every parent was skipped")
        return False

    def _skip(self, step_id: str, reason: str) -> None:
        """Mark a step skipped: done, so its children still run (as after on_error skip)."""
        self._write_skipped(step_id, reason)
        self.done.add(step_id)

    def _write_skipped(self, step_id: str, reason: str) -> None:
        """A skipped step's row (a new attempt) and its step.skipped event."""
        record = self.steps.get(step_id)
        attempt = record.attempt + 1 if record else 1
        self._write_step(
            step_id,
            attempt,
            insert=True,
            step_type=self._type_of(step_id),
            status=StepStatus.SKIPPED,
            completed_at=self.now(),
        )
        self._emit(
            EventType.STEP_SKIPPED,
            {"step_id": step_id, "status": StepStatus.SKIPPED, "reason": reason},
            step_id,
        )

    def _start_ready(self) -> None:
        limit = max(1, self.state.max_concurrency or 1)
        for step_id in self._ready():
            if len(self.tasks) >= limit or self.status.is_finished:
                return
            self._start(step_id)

    def _next_attempt(self, step_id: str) -> tuple[int, bool]:
        """(attempt number, insert?) for the step's next execution."""
        record = self.steps.get(step_id)
        if record is None:
            return 1, True
        if record.status in (StepStatus.PENDING, StepStatus.RUNNING):
            # A retry reset, the next attempt after a backoff, or an attempt in flight when
            # a worker died: it runs again under its own number.
            return record.attempt, False
        return record.attempt + 1, True

    def _start(self, step_id: str) -> None:
        attempt, insert = self._next_attempt(step_id)
        node = self.nodes[step_id]
        type_name = self._type_of(step_id)
        step_type = self.registry.get(type_name)
        now = self.now()
        config = (node.get("data") or {}).get("config") or {}
        scope = self._scope(step_id, attempt)
        error = None
        resolved: dict = {}
        if step_type is None:
            error = f"unknown step type {type_name!r}"
        elif not isinstance(config, dict):
            error = "config must be an object"
        else:
            try:
                resolved = self._resolve(step_type, config, scope)
            except (TemplateError, ExpressionError) as exc:
                error = f"config could not be resolved: {exc}"
        self._write_step(
            step_id,
            attempt,
            insert=insert,
            step_type=type_name,
            status=StepStatus.RUNNING,
            input=step_type.redact(resolved) if step_type is not None else resolved,
            started_at=now,
            waiting_for="",
            wake_at=None,
            error="",
        )
        self._emit(
            EventType.STEP_STARTED,
            {
                "step_id": step_id,
                "step_type": type_name,
                "step_label": self._label(step_id),
                "attempt": attempt,
            },
            step_id,
        )
        if error is not None:
            self._step_failed(step_id, attempt, error, retryable=False)
            return
        self._started_in[step_id] = self._batches_taken + 1
        self.tasks[step_id] = asyncio.ensure_future(
            self._execute(step_type, step_id, attempt, resolved, scope)
        )

    def _scope(self, step_id: str, attempt: int) -> Scope:
        run = {
            "id": self.run_id,
            "step_id": step_id,
            "attempt": attempt,
            "idempotency_key": f"{self.run_id}:{step_id}",
        }
        return Scope(self.context, self._context_order, run, self.workflow_state)

    @staticmethod
    def _resolve(step_type: StepType, config: dict, scope) -> dict:
        raw = step_type.raw_config_keys
        if not raw:
            return render(config, scope)
        resolved = render({k: v for k, v in config.items() if k not in raw}, scope)
        resolved.update({k: v for k, v in config.items() if k in raw})
        return resolved

    async def _execute(self, step_type, step_id, attempt, config, scope) -> Outcome:
        timeout = self.policies[step_id].timeout_seconds
        try:
            if timeout:
                async with asyncio.timeout(timeout):
                    output = await step_type.execute(config, scope)
            else:
                output = await step_type.execute(config, scope)
        except Suspend as suspend:
            return Outcome(step_id, attempt, suspend=suspend)
        except Effect as effect:
            return await self._perform(step_id, attempt, effect)
        except TimeoutError:
            return Outcome(step_id, attempt, error=f"timed out after {timeout:g} seconds")
        except StepError as exc:
            return Outcome(step_id, attempt, error=str(exc), retryable=exc.retryable)
        except (TemplateError, ExpressionError) as exc:
            return Outcome(step_id, attempt, error=str(exc), retryable=False)
        except Exception as exc:  # a handler bug must fail the step, not the worker
            logger.exception("step %s of run %s raised", step_id, self.run_id)
            return Outcome(step_id, attempt, error=f"{type(exc).__name__}: {exc}")
        if not isinstance(output, dict):
            return Outcome(
                step_id,
                attempt,
                error=f"the handler returned {type(output).__name__}, not an object",
                retryable=False,
            )
        try:
            output = json.loads(json.dumps(output, default=str))
        except (TypeError, ValueError) as exc:
            return Outcome(step_id, attempt, error=f"output is not JSON: {exc}", retryable=False)
        return Outcome(step_id, attempt, output=output)

    async def _perform(self, step_id: str, attempt: int, effect: Effect) -> Outcome:
        """Hand a step's database work to the store (a lost lease stops the run), once the
        step's start is written, so that the events it writes follow it in the run's log."""
        while self._batches_written < self._started_in.get(step_id, 0):
            await self._written.wait()
        try:
            performed = await self.store.perform(
                self.run_id, self.fence, step_id, attempt, effect.kind, effect.request
            )
        except Suspend as suspend:
            return Outcome(step_id, attempt, suspend=suspend)
        except StepError as exc:
            return Outcome(step_id, attempt, error=str(exc), retryable=exc.retryable)
        except LostLease:
            raise
        except Exception as exc:
            logger.exception("step %s of run %s: %s failed", step_id, self.run_id, effect.kind)
            return Outcome(step_id, attempt, error=f"{type(exc).__name__}: {exc}")
        return Outcome(step_id, attempt, output=performed.output, state=performed.state)

    # -- outcomes ---------------------------------------------------------------------------

    def _apply(self, outcome: Outcome) -> None:
        if self.status.is_finished:
            return
        if outcome.suspend is not None:
            self._step_waiting(outcome.step_id, outcome.attempt, outcome.suspend)
        elif outcome.error is not None:
            self._step_failed(outcome.step_id, outcome.attempt, outcome.error, outcome.retryable)
        else:
            if outcome.state is not None:
                self.workflow_state = outcome.state  # steps starting from now see it
            self._step_completed(outcome.step_id, outcome.attempt, outcome.output)

    def _step_waiting(self, step_id: str, attempt: int, suspend: Suspend) -> None:
        wake_at = None
        if suspend.seconds is not None:
            wake_at = self.now() + timedelta(seconds=suspend.seconds)
        fields = {}
        if suspend.output is not None:
            fields["output"] = suspend.output
        if suspend.child is not None:
            self.batch.children.append(suspend.child)
        self._write_step(
            step_id,
            attempt,
            status=StepStatus.WAITING,
            waiting_for=suspend.waiting_for,
            wake_at=wake_at,
            **fields,
        )
        self._emit(
            EventType.STEP_WAITING,
            {
                "step_id": step_id,
                "step_type": self._type_of(step_id),
                "status": StepStatus.WAITING,
                "waiting_for": suspend.waiting_for,
                "label": suspend.label or self._label(step_id),
                "wake_at": wake_at.isoformat() if wake_at else None,
            },
            step_id,
        )

    def _step_completed(self, step_id: str, attempt: int, output: dict) -> None:
        now = self.now()
        record = self.steps.get(step_id)
        duration = None
        if record is not None and record.started_at is not None:
            duration = int((now - record.started_at).total_seconds() * 1000)
        self._write_step(
            step_id,
            attempt,
            status=StepStatus.COMPLETED,
            output=output,
            completed_at=now,
            waiting_for="",
            wake_at=None,
            resume_data=None,
        )
        self._emit(
            EventType.STEP_COMPLETED,
            {
                "step_id": step_id,
                "step_type": self._type_of(step_id),
                "status": StepStatus.COMPLETED,
                "output_summary": summarize(output),
                "duration_ms": duration,
                "attempt": attempt,
            },
            step_id,
        )
        self._set_output(step_id, output)
        self.done.add(step_id)
        if self._join_any_children:
            self._record_ignored_joins(step_id)
        if self._type_of(step_id) == "condition":
            self._skip_losing_branch(step_id, output)

    def _record_ignored_joins(self, parent: str) -> None:
        """A parent completing after its `join: any` child started is ignored: say so."""
        for child in self._join_any_children.get(parent, ()):
            if child in self.steps and child not in self.dead:
                self._emit(
                    EventType.JOIN_IGNORED,
                    {
                        "step_id": child,
                        "parent_step_id": parent,
                        "reason": f"join any: {child} had already started",
                    },
                    child,
                )

    def _skip_losing_branch(self, step_id: str, output: dict) -> None:
        newly_dead = self.graph.dead_nodes(
            self._losing_edges(step_id, output), already_dead=self.dead
        )
        branch = output.get("branch")
        for node_id in self.graph.node_ids:
            if node_id not in newly_dead or node_id in self.done:
                continue
            self.dead.add(node_id)
            self._write_skipped(node_id, f"branch not taken: {step_id} chose {branch}")

    def _step_failed(self, step_id: str, attempt: int, error: str, retryable: bool = True) -> None:
        policy = self.policies[step_id]
        now = self.now()
        if retryable and attempt < policy.max_attempts:
            backoff = policy.backoff(attempt)
            self._write_step(
                step_id, attempt, status=StepStatus.FAILED, error=error, completed_at=now
            )
            self._emit(
                EventType.STEP_RETRYING,
                {
                    "step_id": step_id,
                    "attempt": attempt,
                    "max_attempts": policy.max_attempts,
                    "backoff_seconds": backoff,
                    "error": error,
                },
                step_id,
            )
            self._write_step(
                step_id,
                attempt + 1,
                insert=True,
                step_type=self._type_of(step_id),
                status=StepStatus.WAITING,
                waiting_for=WaitingFor.BACKOFF,
                wake_at=now + timedelta(seconds=backoff),
            )
            return
        status = StepStatus.SKIPPED if policy.on_error == "skip" else StepStatus.FAILED
        output = {"_error": error} if policy.on_error == "continue" else None
        self._write_step(
            step_id,
            attempt,
            status=status,
            error=error,
            output=output,
            completed_at=now,
            waiting_for="",
            wake_at=None,
            resume_data=None,
        )
        self._emit(
            EventType.STEP_FAILED,
            {
                "step_id": step_id,
                "step_type": self._type_of(step_id),
                "status": StepStatus.FAILED,
                "error": error,
                "attempt": attempt,
            },
            step_id,
        )
        if policy.on_error == "continue":
            self._set_output(step_id, output)
            self.done.add(step_id)
        elif policy.on_error == "skip":
            self._emit(
                EventType.STEP_SKIPPED,
                {"step_id": step_id, "status": StepStatus.SKIPPED, "reason": f"on_error: {error}"},
                step_id,
            )
            self.done.add(step_id)
        else:
            self._fail_run(f"step {step_id} failed: {error}", failed_step_id=step_id)

    # -- finishing ------------------------------------------------------------------------------

    def _cancel_in_flight(self) -> list[str]:
        cancelled = []
        now = self.now()
        for step_id, task in list(self.tasks.items()):
            task.cancel()
            self.cancelled_tasks.append(task)
            record = self.steps[step_id]
            self._write_step(step_id, record.attempt, status=StepStatus.CANCELLED, completed_at=now)
            cancelled.append(step_id)
        for record in self.steps.values():
            if record.status == StepStatus.WAITING and record.step_id not in cancelled:
                self._write_step(
                    record.step_id,
                    record.attempt,
                    status=StepStatus.CANCELLED,
                    completed_at=now,
                    waiting_for="",
                    wake_at=None,
                )
                cancelled.append(record.step_id)
        self.tasks.clear()
        return cancelled

    def _fail_run(self, error: str, failed_step_id: str | None = None) -> None:
        cancelled = self._cancel_in_flight()
        payload = {"status": RunStatus.FAILED, "error": error, "duration_ms": self._duration_ms()}
        if failed_step_id:
            payload["failed_step_id"] = failed_step_id
        if cancelled:
            payload["cancelled_step_ids"] = cancelled
        self._finish(RunStatus.FAILED, EventType.RUN_FAILED, payload, error=error)

    def _finish_completed(self) -> None:
        self._finish(
            RunStatus.COMPLETED,
            EventType.RUN_COMPLETED,
            {"status": RunStatus.COMPLETED, "duration_ms": self._duration_ms()},
        )

    def _finish(self, status: RunStatus, event_type: EventType, payload: dict, error="") -> None:
        self.status = status
        self.batch.run.update(status=status, error=error, completed_at=self.now(), wake_at=None)
        self.batch.release = True
        self.batch.notify_parent = self.state.parent_run_id is not None
        self._emit(event_type, payload)


async def execute_run(store: Store, run_id: str, fence: int, **kwargs) -> RunStatus:
    """Run one activation; a lost lease ends it quietly (the new owner carries on)."""
    try:
        return await Executor(store, run_id, fence, **kwargs).run()
    except LostLease:
        logger.info("run %s: lease lost, stopping", run_id)
        raise
