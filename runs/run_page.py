"""The run page's data and its fragments, shared by the view and the HTML stream.

Every fragment of the page is one partial under `templates/runs/partials/`. The view
renders them inside `run_detail.html`; `runs.consumers.RunPageConsumer` renders the same
partials with `oob` set, so htmx swaps them in out of band. `PageState` holds the parts of
the page that follow the run's state, keyed by DOM id, so the stream can send only the ones
that changed.
"""

from dataclasses import dataclass

from django.template.loader import render_to_string
from django.utils import timezone

from engine.graph import CycleError, Graph
from engine.statuses import RunStatus, StepStatus, WaitingFor
from runs.models import Run, StepRun

PARTIALS = "runs/partials"
MAX_CHILDREN_SHOWN = 50


@dataclass
class Bar:
    """One row of the waterfall: a step's span from its first start to its last end."""

    step_id: str
    offset: float
    width: float
    duration_ms: int
    status: str
    critical: bool


def load_run(run_id) -> Run | None:
    return Run.objects.select_related("workflow", "created_by").filter(pk=run_id).first()


def latest_attempts(steps: list[StepRun]) -> dict[str, StepRun]:
    latest: dict[str, StepRun] = {}
    for step in steps:
        if step.step_id not in latest or step.attempt > latest[step.step_id].attempt:
            latest[step.step_id] = step
    return latest


def undecided_waits(steps: list[StepRun], waiting_for: WaitingFor) -> list[StepRun]:
    """Steps waiting for `waiting_for` (an approval, an event) that nobody has given yet:
    the run page's approve and resume forms."""
    return [
        step
        for step in latest_attempts(steps).values()
        if step.status == StepStatus.WAITING
        and step.waiting_for == waiting_for
        and step.resume_data is None
    ]


def approval_decisions(steps: list[StepRun]) -> list[dict]:
    """Approvals decided so far, in step order: step_id, approved, decided_by, comment
    (from the step's output once it ran, else from the decision waiting to be applied)."""
    decisions = []
    for step in steps:
        if step.step_type != "wait_for_approval":
            continue
        for data in (step.output, step.resume_data):
            if isinstance(data, dict) and "approved" in data:
                decisions.append(
                    {
                        "step_id": step.step_id,
                        "approved": bool(data["approved"]),
                        "decided_by": data.get("decided_by") or "",
                        "comment": data.get("comment") or "",
                    }
                )
                break
    return decisions


def _graph(run: Run) -> Graph | None:
    try:
        graph = Graph.from_definition(run.workflow.definition or {})
        graph.topological_order()
    except (CycleError, ValueError, TypeError, KeyError, AttributeError):
        return None
    return graph


def waterfall(run: Run, steps: list[StepRun], graph: Graph | None) -> list[Bar]:
    """Bars in order of start, as fractions (0..100) of the run's span; the critical path
    (the heaviest chain of step durations through the graph) is marked."""
    now = timezone.now()
    spans: dict[str, list] = {}
    for step in steps:
        if step.started_at is None:
            continue
        end = step.completed_at or now
        span = spans.setdefault(step.step_id, [step.started_at, end, step.status])
        span[0] = min(span[0], step.started_at)
        span[1] = max(span[1], end)
        span[2] = step.status
    if not spans:
        return []
    start = min([span[0] for span in spans.values()] + [run.started_at or now])
    end = max(span[1] for span in spans.values())
    total = max((end - start).total_seconds(), 0.001)
    durations = {
        step_id: (span[1] - span[0]).total_seconds() * 1000 for step_id, span in spans.items()
    }
    critical: set[str] = set()
    if graph is not None:
        path, _ = graph.critical_path(durations)
        critical = {node for node in path if node in spans}
    bars = []
    for step_id, (first, last, status) in sorted(spans.items(), key=lambda item: item[1][0]):
        offset = (first - start).total_seconds() / total * 100
        width = max((last - first).total_seconds() / total * 100, 0.5)
        bars.append(
            Bar(
                step_id=step_id,
                offset=round(offset, 2),
                width=round(min(width, 100 - offset), 2),
                duration_ms=int(durations[step_id]),
                status=status,
                critical=step_id in critical,
            )
        )
    return bars


def graph_levels(steps: list[StepRun], graph: Graph | None) -> list[list[dict]]:
    """The workflow's nodes by execution level, each with its latest status."""
    if graph is None:
        return []
    latest = latest_attempts(steps)
    levels = []
    for level in graph.levels():
        row = []
        for node_id in level:
            data = graph.nodes[node_id].get("data") or {}
            step = latest.get(node_id)
            row.append(
                {
                    "id": node_id,
                    "type": graph.node_type(node_id),
                    "label": data.get("label") or "",
                    "status": step.status if step else "not started",
                    "parents": graph.parents(node_id),
                }
            )
        levels.append(row)
    return levels


def state_context(run: Run, *, can_act: bool = True) -> dict:
    """Everything the state partials need (one query for the steps). `can_act`: whether
    the viewer's role may use the run's actions (accounts.roles RUN); if not, none show."""
    steps = list(run.steps.order_by("created_at", "id"))
    graph = _graph(run)
    status = RunStatus(run.status)
    return {
        "run": run,
        "steps": steps,
        "approvals": undecided_waits(steps, WaitingFor.APPROVAL),
        "event_waits": undecided_waits(steps, WaitingFor.EVENT),
        "decisions": approval_decisions(steps),
        "can_act": can_act,
        "can_cancel": not status.is_finished,
        "can_retry": status == RunStatus.FAILED,
        "bars": waterfall(run, steps, graph),
        "levels": graph_levels(steps, graph),
        "children": list(
            run.child_runs.select_related("workflow").order_by("created_at")[:MAX_CHILDREN_SHOWN]
        ),
    }


def canvas_boot(run: Run) -> dict:
    """Boot data of the read-only canvas island (static/canvas): the graph of the version
    that ran, and the JSON stream whose snapshot and events colour its nodes."""
    return {
        "mode": "run",
        "definition": run.workflow.definition or {},
        "stream_url": f"/ws/runs/{run.pk}",
        "run_status": run.status,
    }


STATE_PARTIALS = {
    "run-header": "_run_header.html",
    "run-actions": "_run_actions.html",
    "run-waterfall": "_waterfall.html",
    "run-graph": "_graph.html",
    "run-context": "_run_context.html",
}


# Rendered where the CSRF token goes, and replaced with each connection's own token.
CSRF_PLACEHOLDER = "csrfplaceholder0000000000000000"


@dataclass
class PageState:
    """The parts of the page that follow the run's state: `fragments` keyed by DOM id
    (header, actions, waterfall, graph, context; out-of-band, with `CSRF_PLACEHOLDER` for
    the token), the step runs keyed by their row's DOM id, and each row's inline HTML."""

    fragments: dict[str, str]
    rows: dict[str, StepRun]
    row_html: dict[str, str]

    @classmethod
    def load(cls, run_id, *, can_act: bool = True) -> "PageState":
        run = load_run(run_id)
        context = {
            **state_context(run, can_act=can_act),
            "oob": "true",
            "csrf_token": CSRF_PLACEHOLDER,
        }
        fragments = {
            dom_id: render_to_string(f"{PARTIALS}/{name}", context)
            for dom_id, name in STATE_PARTIALS.items()
        }
        rows = {f"step-row-{step.pk}": step for step in context["steps"]}
        return cls(fragments, rows, {key: step_row(step) for key, step in rows.items()})


def steps_body(steps: list[StepRun]) -> str:
    """The whole step table body, replacing the page's (on connect)."""
    return render_to_string(f"{PARTIALS}/_steps_body.html", {"steps": steps, "oob": "true"})


def step_row(step: StepRun, *, oob: str = "") -> str:
    return render_to_string(f"{PARTIALS}/_step_row.html", {"step": step, "oob": oob})


TIMELINE_PAGE = 200


@dataclass
class TimelinePage:
    """The newest `TIMELINE_PAGE` events before a seq, in order. `earlier` is the seq to
    page back from (the first one shown) while events before it exist, and `earlier_count`
    how many there are (seqs are gapless from 1)."""

    events: list[dict]
    earlier: int | None
    earlier_count: int

    @classmethod
    def load(cls, run: Run, before: int | None = None) -> "TimelinePage":
        events = run.events.order_by("-seq")
        if before is not None:
            events = events.filter(seq__lt=before)
        newest = [event.envelope() for event in events[:TIMELINE_PAGE]]
        newest.reverse()
        first = newest[0]["seq"] if newest else 1
        return cls(newest, first if first > 1 else None, first - 1)

    def context(self) -> dict:
        return {"events": self.events, "earlier": self.earlier, "earlier_count": self.earlier_count}


def timeline_entry(envelope: dict) -> str:
    return render_to_string(f"{PARTIALS}/_timeline_entry.html", {"event": envelope})
