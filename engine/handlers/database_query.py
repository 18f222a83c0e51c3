"""database_query: one parameterized SQL statement on a database the operator configured.

Connections are named in `settings.FLOWMATRX_QUERY_DATABASES` (name → URL; `postgres://`,
`postgresql://` or `sqlite:///path`); Flow Matrx's own database is never reachable.
Safety (SPEC §6): parameters are always bound by the driver, never interpolated; exactly
one statement runs (PostgreSQL's extended protocol and sqlite3 both refuse a second one,
with or without parameters); by default the statement runs in a read-only transaction
(PostgreSQL `READ ONLY`; SQLite opened `mode=ro` and an authorizer that allows only
reads) under a statement timeout. At most `max_rows` rows are fetched. For real isolation
give the configured URL a database role that may only read.
"""

import asyncio
import base64
import json
import math
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import aclosing
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as time_of_day
from decimal import Decimal
from pathlib import Path

import dj_database_url
import psycopg
from django.conf import settings
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from engine.errors import NonRetryableError, StepError
from engine.registry import step_type

MAX_ROWS_LIMIT = 100_000
MAX_TIMEOUT_SECONDS = 3600

SCHEMA = {
    "type": "object",
    "required": ["connection", "query"],
    "properties": {
        "connection": {
            "type": "string",
            "minLength": 1,
            "description": "Name of a database configured in FLOWMATRX_QUERY_DATABASES.",
        },
        "query": {
            "type": "string",
            "minLength": 1,
            "description": "One SQL statement. Placeholders: PostgreSQL %s or %(name)s "
            "(then write a literal % as %%), SQLite ? or :name. Never put values into the "
            "text: pass them as params.",
        },
        "params": {
            "type": ["array", "object", "null"],
            "description": "Values bound to the placeholders: a list for positional ones, "
            "an object for named ones.",
        },
        "max_rows": {
            "type": "integer",
            "minimum": 1,
            "maximum": MAX_ROWS_LIMIT,
            "default": 1000,
            "description": "Rows returned at most; 'truncated' says when there were more.",
        },
        "read_only": {
            "type": "boolean",
            "default": True,
            "description": "Run in a read-only transaction. Turn off to write.",
        },
        "timeout_seconds": {
            "type": "number",
            "exclusiveMinimum": 0,
            "maximum": MAX_TIMEOUT_SECONDS,
            "default": 30,
            "description": "Statement timeout.",
        },
    },
    "additionalProperties": False,
}


@dataclass(frozen=True)
class Query:
    connection: str
    sql: str
    params: list | dict | None
    max_rows: int
    read_only: bool
    timeout: float


def _option(config, key, default):
    value = config.get(key)
    return default if value is None else value


def _query(config) -> Query:
    connection, sql = config.get("connection"), config.get("query")
    if not isinstance(connection, str) or not connection:
        raise NonRetryableError("database_query needs 'connection', a configured database name")
    if not isinstance(sql, str) or not sql.strip():
        raise NonRetryableError("database_query needs 'query', an SQL statement")
    params = config.get("params")
    if params is not None and not isinstance(params, list | dict):
        raise NonRetryableError("database_query: 'params' must be a list or an object")
    max_rows = _option(config, "max_rows", 1000)
    if type(max_rows) is not int or not 1 <= max_rows <= MAX_ROWS_LIMIT:
        raise NonRetryableError(f"database_query: 'max_rows' must be 1 to {MAX_ROWS_LIMIT}")
    read_only = _option(config, "read_only", True)
    if not isinstance(read_only, bool):
        raise NonRetryableError("database_query: 'read_only' must be true or false")
    timeout = _option(config, "timeout_seconds", 30)
    if type(timeout) not in (int, float) or not 0 < timeout <= MAX_TIMEOUT_SECONDS:
        raise NonRetryableError(
            f"database_query: 'timeout_seconds' must be above 0 and at most {MAX_TIMEOUT_SECONDS}"
        )
    return Query(connection, sql, params or None, max_rows, read_only, float(timeout))


# -- which database -------------------------------------------------------------------------

_LOCAL_HOSTS = {"", "localhost", "127.0.0.1", "::1"}


def _identity(engine: str, name, host, port) -> tuple:
    """What makes two database settings the same database (good enough to refuse one)."""
    if "sqlite" in engine:
        return ("sqlite", str(Path(str(name)).resolve()))
    host = str(host or "").lower()
    host = "local" if host in _LOCAL_HOSTS or host.startswith("/") else host
    return ("postgres", host, int(port or 5432), str(name or ""))


def _is_app_database(parsed: dict) -> bool:
    target = _identity(parsed["ENGINE"], parsed["NAME"], parsed.get("HOST"), parsed.get("PORT"))
    for db in settings.DATABASES.values():
        test_name = (db.get("TEST") or {}).get("NAME") or f"test_{db.get('NAME')}"
        for name in (db.get("NAME"), test_name):
            if name and _identity(db["ENGINE"], name, db.get("HOST"), db.get("PORT")) == target:
                return True
    return False


def resolve_connection(name: str) -> tuple[str, str]:
    """(kind "postgres" or "sqlite", URL or file path) of a configured connection name."""
    configured = getattr(settings, "FLOWMATRX_QUERY_DATABASES", None) or {}
    if name not in configured:
        known = ", ".join(sorted(configured)) or "none (set FLOWMATRX_QUERY_DATABASES)"
        raise NonRetryableError(
            f"database_query: unknown connection {name!r}; configured connections: {known}"
        )
    url = configured[name]
    try:
        parsed = dj_database_url.parse(url)
    except (ValueError, TypeError, AttributeError):
        parsed = {"ENGINE": ""}
    engine = parsed["ENGINE"]
    if "postgresql" not in engine and "sqlite" not in engine:
        raise NonRetryableError(
            f"database_query: connection {name!r} must be a postgres:// or sqlite:/// URL"
        )
    if _is_app_database(parsed):
        raise NonRetryableError(
            f"database_query: connection {name!r} is Flow Matrx's own database, "
            "which workflows may not query"
        )
    if "sqlite" in engine:
        return "sqlite", parsed["NAME"]
    return "postgres", url


# -- values ---------------------------------------------------------------------------------


def _decimal(value: Decimal):
    if not value.is_finite():
        return str(value)
    if value == value.to_integral_value() and abs(value) < 2**53:
        return int(value)
    number = float(value)
    return number if Decimal(repr(number)) == value else str(value)


def json_safe(value):
    """A database value as JSON: dates as ISO strings, Decimal as a number when exact (else
    a string), bytes as base64, intervals as seconds, UUIDs and other types as strings."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Decimal):
        return _decimal(value)
    if isinstance(value, datetime | date | time_of_day):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return str(value)


# -- PostgreSQL -----------------------------------------------------------------------------


def _pg_value(value):
    if isinstance(value, dict) or (
        isinstance(value, list) and any(isinstance(v, dict | list) for v in value)
    ):
        return Jsonb(value)
    return value  # a flat list becomes an array (for `= ANY(%s)`)


def _pg_error(exc: psycopg.Error, q: Query) -> StepError:
    state, message = exc.sqlstate or "", str(exc).strip()
    if state == "57014":
        return StepError(f"database_query: the query ran longer than {q.timeout:g} seconds")
    if state == "42601" and "multiple commands" in message:
        return NonRetryableError("database_query: only one SQL statement may run per query")
    if state == "25006":
        return NonRetryableError(f"database_query: {message} (read_only is true)")
    if isinstance(exc, psycopg.OperationalError) or state[:2] in ("08", "40", "53", "57"):
        return StepError(f"database_query: {message}", retryable=True)
    return NonRetryableError(f"database_query: {message}")


async def _fetch_postgres(conn, q: Query) -> tuple[list, int | None]:
    params = q.params
    if isinstance(params, list):
        params = [_pg_value(v) for v in params]
    elif isinstance(params, dict):
        params = {k: _pg_value(v) for k, v in params.items()}
    async with conn.cursor(row_factory=dict_row) as cur:
        timeout_ms = str(max(1, int(q.timeout * 1000)))
        await cur.execute("SELECT set_config('statement_timeout', %s, true)", [timeout_ms])
        if q.read_only:
            # stream(): the extended protocol (one statement only, also without params),
            # row by row, so a huge result is never held in memory.
            rows = []
            async with aclosing(cur.stream(q.sql, params)) as stream:
                async for row in stream:
                    rows.append(row)
                    if len(rows) > q.max_rows:
                        break  # aclosing: the rest is cancelled before the rollback
            return rows, None
        # prepare=True: the extended protocol even without params, so one statement only.
        await cur.execute(q.sql, params, prepare=True)
        if cur.description is None:
            return [], cur.rowcount
        return await cur.fetchmany(q.max_rows + 1), None


async def _run_postgres(url: str, q: Query) -> tuple[list, int | None]:
    try:
        conn = await psycopg.AsyncConnection.connect(
            url,
            connect_timeout=max(2, min(10, int(q.timeout))),
            application_name="flowmatrx-database-query",
        )
    except psycopg.Error as exc:
        raise StepError(
            f"database_query: cannot connect to {q.connection!r}: {str(exc).strip()}",
            retryable=True,
        ) from exc
    async with conn:
        await conn.set_read_only(q.read_only)
        try:
            rows, affected = await _fetch_postgres(conn, q)
        except psycopg.ProgrammingError as exc:
            if exc.sqlstate is None and "didn't produce a result" in str(exc):
                raise NonRetryableError(
                    "database_query: the statement returned no rows "
                    "(set read_only to false to run commands)"
                ) from exc
            raise _pg_error(exc, q) from exc
        except psycopg.Error as exc:
            raise _pg_error(exc, q) from exc
        if q.read_only:
            await conn.rollback()
        else:
            await conn.commit()
    return [{k: json_safe(v) for k, v in row.items()} for row in rows], affected


# -- SQLite ---------------------------------------------------------------------------------

_READS = frozenset(
    {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}
)


def _reads_only(action, *args):
    return sqlite3.SQLITE_OK if action in _READS else sqlite3.SQLITE_DENY


def _no_attach(action, *args):
    attach = action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH)
    return sqlite3.SQLITE_DENY if attach else sqlite3.SQLITE_OK


def _sqlite_value(value):
    return json.dumps(value) if isinstance(value, dict | list) else value


def _sqlite_error(exc: Exception, q: Query, deadline: float) -> StepError:
    message = str(exc)
    if message == "interrupted" and time.monotonic() >= deadline:
        return StepError(f"database_query: the query ran longer than {q.timeout:g} seconds")
    if "one statement at a time" in message:
        return NonRetryableError("database_query: only one SQL statement may run per query")
    if q.read_only and ("authoriz" in message or "readonly" in message):
        return NonRetryableError(
            f"database_query: {message} (read_only is true: only reading statements may run)"
        )
    if "locked" in message or "busy" in message:
        return StepError(f"database_query: {message}", retryable=True)
    return NonRetryableError(f"database_query: {message}")


_SQLITE_THREADS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="flowmatrx-sqlite-query")


def _run_sqlite(path: str, q: Query) -> tuple[list, int | None]:
    uri = Path(path).resolve().as_uri() + ("?mode=ro" if q.read_only else "?mode=rw")
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=min(q.timeout, 30))
    except sqlite3.Error as exc:
        raise StepError(
            f"database_query: cannot open {q.connection!r}: {exc}", retryable=True
        ) from exc
    deadline = time.monotonic() + q.timeout
    try:
        conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
        conn.set_authorizer(_reads_only if q.read_only else _no_attach)
        conn.set_progress_handler(lambda: time.monotonic() >= deadline, 10_000)
        params = q.params or ()
        if isinstance(params, list):
            params = [_sqlite_value(v) for v in params]
        elif isinstance(params, dict):
            params = {k: _sqlite_value(v) for k, v in params.items()}
        cur = conn.execute(q.sql, params)  # refuses a second statement itself
        if cur.description is None:
            rows, affected = [], cur.rowcount
        else:
            names = [d[0] for d in cur.description]
            rows = [dict(zip(names, row, strict=True)) for row in cur.fetchmany(q.max_rows + 1)]
            affected = None
        if not q.read_only:
            conn.commit()
    except (sqlite3.Error, OverflowError) as exc:
        raise _sqlite_error(exc, q, deadline) from exc
    finally:
        conn.close()
    return [{k: json_safe(v) for k, v in row.items()} for row in rows], affected


@step_type(
    name="database_query",
    config_schema=SCHEMA,
    label="Database query",
    category="Data",
    description="Run a parameterized SQL query on a configured PostgreSQL or SQLite database.",
    icon="database",
)
async def execute(config, context):
    q = _query(config)
    kind, target = resolve_connection(q.connection)
    if kind == "sqlite":
        # Our own pool, not the loop's default executor: a worker's loop outlives many
        # queries, and a short-lived loop (tests, management commands) then has no
        # executor threads to leave behind.
        rows, affected = await asyncio.get_running_loop().run_in_executor(
            _SQLITE_THREADS, _run_sqlite, target, q
        )
    else:
        rows, affected = await _run_postgres(target, q)
    truncated = len(rows) > q.max_rows
    rows = rows[: q.max_rows]
    return {"rows": rows, "count": len(rows), "truncated": truncated, "affected_rows": affected}
