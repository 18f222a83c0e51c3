"""Flow control: concurrency, rate limit, throttle, debounce and priority (SPEC §2 settings).

Every rule works per *bucket*: the workflow's lineage (all its versions share it) plus a key
rendered from the rule's `key` template over `{"input": <run input>}`. No key: one bucket
per workflow. A key that fails to render (a missing input field, a template error) does not
refuse the run: it falls into the "" bucket of that workflow (a trigger, e.g. a schedule or
an event, must never be lost to a malformed payload); the run's `flow["key_errors"]` keeps
the message. Non-string keys are rendered to JSON text; keys are cut to 200 characters.

Decided when the run is requested (`admit`, called by `lifecycle.start_run` inside its
transaction, only for workflows that have flow-control settings):

- rate_limit {"limit", "period_seconds", "key"?}: when `limit` runs of the bucket were
  admitted (created not rate-limited) in the last `period_seconds`, the new run is created
  already `cancelled` with error "rate limited: ..." and a `run.cancelled` event carrying
  the same reason; it never runs. Rate-limited runs do not count toward the limit.
- throttle {"limit", "period_seconds", "key"?}: each run gets a start slot: now, or later
  so that no `period_seconds` window holds more than `limit` slots of the bucket; a later
  slot is the run's `wake_at` (the claim waits for it). Runs are delayed, never dropped.
- debounce {"period_seconds", "key"?}: the new run waits `period_seconds` (`wake_at`), and
  every earlier run of the bucket still waiting for its debounce window (pending, wake_at
  in the future) is cancelled with the reason "debounced by <new run id>". So of a burst,
  only the last request runs, with its input, `period_seconds` after it.
- priority (integer or template, default 0): rendered to an int, clamped to
  ±PRIORITY_LIMIT, stored in `Run.priority` (higher is claimed first). An explicit
  non-zero `priority` passed to `start_run` wins; a template that fails gives 0.

These decisions are made under a per-bucket lock so that concurrent starts cannot exceed a
limit: on PostgreSQL `pg_advisory_xact_lock(hashtext('<lineage>:<rule>:<key>'))` inside
the start transaction (rules locked in a fixed order); SQLite serializes writers anyway
(IMMEDIATE transactions). Times are the database clock (`eventlog.db_now`); `admit` takes
`now` so tests can drive the clock.

Decided when a worker claims (runs/worker.py):

- concurrency {"limit", "key"?}: the run stores its bucket (`Run.flow_key`) and limit
  (`Run.concurrency_limit`). A slot is held by every run of the bucket with status
  `running` (including one parked on a delay/backoff timer) and by a pending or paused run
  a worker has claimed (lease active) but not yet started. Pending runs, paused runs
  (waiting for a person or an event) and finished runs hold none. On PostgreSQL a claim
  first takes a transaction-level advisory lock per bucket it may claim from
  (`pg_try_advisory_xact_lock`: a bucket another worker is claiming from is skipped, not
  waited for), then counts the slots and claims in the next statement, whose snapshot
  sees every claim committed in those buckets: two workers can never both fill the last
  slot, and workers claiming from different buckets never wait for each other. Limited
  and unlimited runs are claimed in one order, priority then creation (runs/worker.py
  PG_CLAIM); excess runs wait in that order. When a limited run leaves a worker, the
  worker wakes all workers to fill the freed slot.
  Resuming a paused limited run (approval, event: `lifecycle.resume`) does not make it
  running: it stays `paused` with `wake_at` set (a `run.paused` event says it waits for a
  slot), which makes it a candidate of the limited claim like a pending run; the executor
  marks it resumed when it is claimed. A limited run due but without a slot is not counted
  as a timer by the workers' next-wakeup (they are woken when a slot frees instead).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import Count, Q
from django.db.models.fields.json import KT

from engine.events import NewEvent
from engine.statuses import EventType, RunStatus
from engine.templates import TemplateError, render

RULES = ("concurrency", "rate_limit", "throttle", "debounce", "priority")
START_RULES = ("rate_limit", "throttle", "debounce")
PRIORITY_LIMIT = 1_000_000
MAX_KEY_CHARS = 200


def has_flow_control(settings: dict) -> bool:
    return any(settings.get(rule) not in (None, {}, 0) for rule in RULES)


def render_key(template: Any, input: dict) -> tuple[str, str | None]:
    """(the rendered key, an error message or None). No template: ""."""
    if template in (None, ""):
        return "", None
    try:
        value = render(template, {"input": input})
    except TemplateError as exc:
        return "", str(exc)
    if value is None:
        value = ""
    if not isinstance(value, str):
        value = json.dumps(value, sort_keys=True, default=str)
    return value[:MAX_KEY_CHARS], None


def render_priority(value: Any, input: dict) -> int:
    if isinstance(value, str):
        try:
            value = render(value, {"input": input})
        except TemplateError:
            return 0
        try:
            value = int(float(value))
        except (TypeError, ValueError, OverflowError):
            return 0
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    return max(-PRIORITY_LIMIT, min(PRIORITY_LIMIT, int(value)))


def bucket(lineage, key: str) -> str:
    return f"{lineage}:{key}"


def _cancelled(reason: str) -> list[NewEvent]:
    return [NewEvent(EventType.RUN_CANCELLED, {"status": RunStatus.CANCELLED, "reason": reason})]


def _lock(name: str) -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [name])


def _lineage_runs(workflow):
    from runs.models import Run

    return Run.objects.filter(workflow__lineage=workflow.lineage)


def rate_limit_state(workflow, rule: dict, key: str, now: datetime) -> tuple[int, datetime | None]:
    """(runs admitted in the window, when the next one may start: None = now)."""
    limit, period = int(rule["limit"]), float(rule["period_seconds"])
    since = now - timedelta(seconds=period)
    times = list(
        _lineage_runs(workflow)
        .filter(flow__rate_limit=key, flow__rate_limited=False, created_at__gt=since)
        .order_by("-created_at")
        .values_list("created_at", flat=True)[:limit]
    )
    if len(times) < limit:
        return len(times), None
    return len(times), times[-1] + timedelta(seconds=period)


def throttle_slot(workflow, rule: dict, key: str, now: datetime) -> datetime:
    """The earliest start at or after `now` keeping at most `limit` starts per window.

    Slots are handed out under the bucket lock and only grow: the new slot is the
    `limit`-th latest slot + period (or now). Slots are stored as fixed-width UTC ISO text,
    so they sort as text."""
    limit, period = int(rule["limit"]), float(rule["period_seconds"])
    rows = list(
        _lineage_runs(workflow)
        .filter(flow__throttle=key)
        .order_by(KT("flow__throttle_at").desc())
        .values_list("flow", flat=True)[:limit]
    )
    if len(rows) < limit:
        return now
    latest = datetime.fromisoformat(rows[-1]["throttle_at"])
    return max(now, latest + timedelta(seconds=period))


def admit(workflow, fields: dict, settings: dict, *, now: datetime):
    """Create the run described by `fields` (Run.objects.create kwargs) under the workflow's
    flow-control settings. Call inside a transaction. Returns (run, events written)."""
    from runs import eventlog
    from runs.models import Run

    input = fields["input"]
    flow: dict[str, Any] = {}
    errors = {}
    keys = {}
    for rule in ("concurrency", *START_RULES):
        config = settings.get(rule)
        if isinstance(config, dict):
            keys[rule], error = render_key(config.get("key"), input)
            if error:
                errors[rule] = error
    if errors:
        flow["key_errors"] = errors

    if "priority" in settings and not fields.get("priority"):
        fields["priority"] = render_priority(settings["priority"], input)
    if "concurrency" in keys:
        fields["flow_key"] = bucket(workflow.lineage, keys["concurrency"])
        fields["concurrency_limit"] = int(settings["concurrency"]["limit"])

    for rule in START_RULES:
        if rule in keys:
            _lock(f"{workflow.lineage}:{rule}:{keys[rule]}")
            flow[rule] = keys[rule]

    fields["created_at"] = now
    if "rate_limit" in keys:
        rule = settings["rate_limit"]
        count, next_at = rate_limit_state(workflow, rule, keys["rate_limit"], now)
        if next_at is not None:
            reason = (
                f"rate limited: {count} runs in the last {rule['period_seconds']} s "
                f"(limit {rule['limit']}"
                + (f", key {keys['rate_limit']!r}" if keys["rate_limit"] else "")
                + f"); next allowed at {next_at.isoformat()}"
            )
            flow["rate_limited"] = True
            run = Run.objects.create(**fields, flow=flow)
            events = eventlog.append(
                run.pk,
                _cancelled(reason),
                status=RunStatus.CANCELLED,
                error=reason,
                completed_at=now,
            )
            run.refresh_from_db()
            return run, events

    if "rate_limit" in keys:
        flow["rate_limited"] = False
    wake_at = None
    if "throttle" in keys:
        slot = throttle_slot(workflow, settings["throttle"], keys["throttle"], now)
        flow["throttle_at"] = slot.astimezone(UTC).isoformat(timespec="microseconds")
        if slot > now:
            wake_at = slot
    debounced = []
    if "debounce" in keys:
        period = float(settings["debounce"]["period_seconds"])
        until = now + timedelta(seconds=period)
        wake_at = max(wake_at or until, until)
        debounced = list(
            _lineage_runs(workflow)
            .select_for_update()
            .filter(
                flow__debounce=keys["debounce"],
                status=RunStatus.PENDING,
                wake_at__gt=now,
                lease_expires_at__isnull=True,
            )
            .values_list("pk", flat=True)
        )
    run = Run.objects.create(**fields, flow=flow, wake_at=wake_at)
    events = []
    for run_id in debounced:
        reason = f"debounced by {run.pk}"
        events.append(
            (
                run_id,
                eventlog.append(
                    run_id,
                    _cancelled(reason),
                    status=RunStatus.CANCELLED,
                    error=reason,
                    completed_at=now,
                    wake_at=None,
                ),
            )
        )
    return run, events


# -- the workflow page ------------------------------------------------------------------------


OVERVIEW_KEYS = 50
"""At most this many keys per rule on the workflow page (the busiest concurrency keys, the
first in key order of the others)."""


def overview(workflow, now: datetime) -> list[dict]:
    """Per rule and key, for the workflow page, from the runs of every version of `workflow`
    under `workflow`'s settings (pass the active version):

    - concurrency: `running` (holding a slot) and `queued` (pending, or resumed and waiting
      for a slot, including claimed-not-yet-started) per key;
    - rate_limit: `in_window` (runs admitted in the last period) and `next_allowed` (None:
      a run may start now);
    - throttle: `queued` (delayed runs) and `next_allowed` (the next free start slot);
    - debounce: `queued` (the run waiting out its window) and `next_allowed` (when it starts).
    """
    settings = workflow.workflow_settings
    rows: list[dict] = []
    runs = _lineage_runs(workflow)
    conc = settings.get("concurrency")
    if isinstance(conc, dict):
        prefix = f"{workflow.lineage}:"
        counts: dict[str, dict] = {}
        for row in (
            runs.filter(concurrency_limit__isnull=False)
            .filter(
                Q(status__in=[RunStatus.PENDING, RunStatus.RUNNING])
                | Q(status=RunStatus.PAUSED, wake_at__isnull=False)
            )
            .values("flow_key", "status")
            .annotate(n=Count("id"))
            .order_by()
        ):
            key = row["flow_key"].removeprefix(prefix)
            entry = counts.setdefault(key, {"running": 0, "queued": 0})
            entry["running" if row["status"] == RunStatus.RUNNING else "queued"] += row["n"]
        busiest = sorted(counts, key=lambda k: -(counts[k]["running"] + counts[k]["queued"]))
        for key in sorted(busiest[:OVERVIEW_KEYS]):
            rows.append(
                {"rule": "concurrency", "key": key, "limit": conc.get("limit"), **counts[key]}
            )
    for rule in ("rate_limit", "throttle", "debounce"):
        config = settings.get(rule)
        if not isinstance(config, dict):
            continue
        since = now - timedelta(seconds=float(config.get("period_seconds") or 0))
        lookup = f"flow__{rule}"
        keys = (
            runs.filter(**{f"{lookup}__isnull": False})
            .filter(Q(created_at__gt=since) | Q(status=RunStatus.PENDING))
            .values_list(lookup, flat=True)
            .distinct()
        )
        for key in sorted(set(keys))[:OVERVIEW_KEYS]:
            entry = {"rule": rule, "key": key, "limit": config.get("limit")}
            waiting = runs.filter(**{lookup: key}, status=RunStatus.PENDING, wake_at__gt=now)
            if rule == "rate_limit":
                count, entry["next_allowed"] = rate_limit_state(workflow, config, key, now)
                entry["in_window"] = count
            elif rule == "throttle":
                entry["queued"] = waiting.count()
                slot = throttle_slot(workflow, config, key, now)
                entry["next_allowed"] = slot if slot > now else None
            else:
                entry["queued"] = waiting.count()
                entry["next_allowed"] = (
                    waiting.order_by("-wake_at").values_list("wake_at", flat=True).first()
                )
            rows.append(entry)
    return rows
