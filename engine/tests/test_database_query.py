"""database_query against a real PostgreSQL database and a real SQLite file."""

import json
import os
import sqlite3
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest

from engine.errors import NonRetryableError, StepError
from engine.handlers import database_query
from engine.handlers.database_query import json_safe
from engine.tests.http_servers import free_port

WORKER = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
PG_SERVER = "postgresql://postgres@127.0.0.1:5432"
PG_NAME = f"flowmatrx_querytest_{WORKER}"
NAMES = ["apple", "banana", "cherry", "date", "elder"]
UID = uuid.UUID("12345678-1234-5678-1234-567812345678")
CONTEXT = {"input": {}, "run": {"id": "r", "step_id": "q", "idempotency_key": "r:q"}}


@pytest.fixture(scope="module")
def pg_url():
    try:
        admin = psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL is not reachable: {exc}")
    with admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{PG_NAME}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{PG_NAME}"')
    url = f"{PG_SERVER}/{PG_NAME}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE items (id int PRIMARY KEY, name text, price numeric(10, 2),"
            " born date, seen timestamptz, blob bytea, uid uuid, meta jsonb, tags text[],"
            " ratio float8, span interval)"
        )
        for i, name in enumerate(NAMES, 1):
            conn.execute(
                "INSERT INTO items VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [
                    i,
                    name,
                    Decimal(f"{i}.50"),
                    date(2024, 1, i),
                    datetime(2024, 1, i, 12, 30, tzinfo=UTC),
                    bytes([i, 255]),
                    UID,
                    psycopg.types.json.Jsonb({"i": i, "nested": [name]}),
                    [name, "fruit"],
                    i / 4,
                    timedelta(minutes=i),
                ],
            )
    yield url
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{PG_NAME}" WITH (FORCE)')


@pytest.fixture(scope="module")
def sqlite_path(tmp_path_factory):
    path = tmp_path_factory.mktemp(f"querytest_{WORKER}") / "query test.sqlite3"
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(
            "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, price REAL, blob BLOB)"
        )
        conn.executemany(
            "INSERT INTO items VALUES (?, ?, ?, ?)",
            [(i, name, i + 0.5, bytes([i, 255])) for i, name in enumerate(NAMES, 1)],
        )
    conn.close()
    return path


@pytest.fixture
def pg(settings, pg_url):
    settings.FLOWMATRX_QUERY_DATABASES = {"pg": pg_url}
    return "pg"


@pytest.fixture
def lite(settings, sqlite_path):
    settings.FLOWMATRX_QUERY_DATABASES = {"lite": f"sqlite:///{sqlite_path}"}
    return "lite"


@pytest.fixture(params=["pg", "lite"])
def backend(request):
    """Each test with this fixture runs on PostgreSQL and on SQLite."""
    return request.getfixturevalue(request.param)


def ph(backend, name=None):
    """The placeholder syntax of the backend: positional or named."""
    if backend == "pg":
        return f"%({name})s" if name else "%s"
    return f":{name}" if name else "?"


async def query(connection, sql, **config):
    return await database_query.execute({"connection": connection, "query": sql, **config}, CONTEXT)


async def item_count(backend):
    out = await query(backend, "SELECT count(*) AS n FROM items")
    return out["rows"][0]["n"]


# -- results ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("max_rows", "count", "truncated"), [(3, 3, True), (5, 5, False)])
async def test_rows_count_and_truncation(backend, max_rows, count, truncated):
    out = await query(backend, "SELECT id, name FROM items ORDER BY id", max_rows=max_rows)
    assert out == {
        "rows": [{"id": i, "name": n} for i, n in enumerate(NAMES[:count], 1)],
        "count": count,
        "truncated": truncated,
        "affected_rows": None,
    }


async def test_empty_result(backend):
    out = await query(backend, "SELECT id FROM items WHERE id < 0")
    assert out == {"rows": [], "count": 0, "truncated": False, "affected_rows": None}


async def test_percent_signs_without_params(backend):
    out = await query(backend, "SELECT name FROM items WHERE name LIKE 'b%' OR name LIKE '%rr%'")
    assert sorted(r["name"] for r in out["rows"]) == ["banana", "cherry"]


async def test_positional_params(backend):
    out = await query(
        backend,
        f"SELECT id FROM items WHERE name = {ph(backend)} OR id = {ph(backend)}",
        params=["banana", 5],
    )
    assert sorted(r["id"] for r in out["rows"]) == [2, 5]


async def test_named_params(backend):
    sql = f"SELECT name FROM items WHERE id > {ph(backend, 'low')} AND id < {ph(backend, 'high')}"
    out = await query(backend, sql + " ORDER BY id", params={"low": 1, "high": 4})
    assert [r["name"] for r in out["rows"]] == ["banana", "cherry"]


@pytest.mark.parametrize("evil", ["x'; DROP TABLE items; --", "' OR '1'='1", "apple' --"])
async def test_params_are_values_never_sql(backend, evil):
    out = await query(backend, f"SELECT id FROM items WHERE name = {ph(backend)}", params=[evil])
    assert out["count"] == 0
    assert await item_count(backend) == 5


async def test_template_values_are_bound_as_params_too(backend):
    out = await query(backend, f"SELECT {ph(backend)} AS v", params=[{"a": [1, 2]}])
    value = out["rows"][0]["v"]
    assert (json.loads(value) if isinstance(value, str) else value) == {"a": [1, 2]}


# -- one statement, read-only -----------------------------------------------------------------


@pytest.mark.parametrize("read_only", [True, False])
@pytest.mark.parametrize(
    "sql",
    ["SELECT 1; DELETE FROM items", "SELECT 1;DELETE FROM items;", "select 1 ; drop table items"],
)
async def test_stacked_statements_are_refused(backend, sql, read_only):
    with pytest.raises(NonRetryableError, match="only one SQL statement may run per query"):
        await query(backend, sql, read_only=read_only)
    assert await item_count(backend) == 5


async def test_stacked_statements_with_params_are_refused(backend):
    with pytest.raises(NonRetryableError, match="one SQL statement"):
        await query(
            backend, f"SELECT {ph(backend)}; DELETE FROM items", params=[1], read_only=False
        )
    assert await item_count(backend) == 5


@pytest.mark.parametrize(
    "sql",
    [
        "DELETE FROM items",
        "INSERT INTO items (id, name) VALUES (99, 'x')",
        "UPDATE items SET name = 'x'",
        "DROP TABLE items",
        "CREATE TABLE sneaky (x int)",
    ],
)
async def test_writes_are_refused_when_read_only(backend, sql):
    with pytest.raises(NonRetryableError, match="read_only is true") as caught:
        await query(backend, sql)
    assert not caught.value.retryable
    out = await query(backend, "SELECT name FROM items ORDER BY id")
    assert [r["name"] for r in out["rows"]] == NAMES


async def test_postgres_read_only_cannot_be_escaped(pg):
    for sql in [
        "DO $$ BEGIN DELETE FROM items; END $$",
        "SELECT set_config('transaction_read_only', 'off', true)",
    ]:
        with pytest.raises(NonRetryableError):
            await query(pg, sql)
    assert await item_count(pg) == 5


async def test_sqlite_cannot_attach_other_files(lite, tmp_path):
    other = tmp_path / "other.sqlite3"
    for read_only in (True, False):
        with pytest.raises(NonRetryableError, match="not authorized"):
            await query(lite, f"ATTACH DATABASE '{other}' AS other", read_only=read_only)
    assert not other.exists()


async def test_writes_are_allowed_when_not_read_only(backend):
    table = f"scratch_{uuid.uuid4().hex[:8]}"
    rw = {"read_only": False}
    try:
        out = await query(backend, f"CREATE TABLE {table} (id int, name text)", **rw)
        assert out["rows"] == [] and out["count"] == 0
        sql = f"INSERT INTO {table} VALUES ({ph(backend)}, {ph(backend)}), (2, 'b'), (3, 'c')"
        out = await query(backend, sql, params=[1, "a"], **rw)
        assert out["affected_rows"] == 3
        out = await query(backend, f"UPDATE {table} SET name = 'z' WHERE id > 1", **rw)
        assert out["affected_rows"] == 2
        out = await query(backend, f"DELETE FROM {table} WHERE id = 3 RETURNING id, name", **rw)
        assert out["rows"] == [{"id": 3, "name": "z"}] and out["affected_rows"] is None
        out = await query(backend, f"SELECT id, name FROM {table} ORDER BY id")
        assert out["rows"] == [{"id": 1, "name": "a"}, {"id": 2, "name": "z"}]
    finally:
        await query(backend, f"DROP TABLE IF EXISTS {table}", **rw)


# -- timeouts and failures --------------------------------------------------------------------


async def test_postgres_statement_timeout(pg):
    started = time.monotonic()
    with pytest.raises(StepError, match="the query ran longer than 1 seconds"):
        await query(pg, "SELECT pg_sleep(5)", timeout_seconds=1)
    assert time.monotonic() - started < 4


async def test_sqlite_statement_timeout(lite):
    sql = (
        "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 1000000000)"
        " SELECT count(*) FROM c"
    )
    started = time.monotonic()
    with pytest.raises(StepError, match=r"the query ran longer than 0\.3 seconds"):
        await query(lite, sql, timeout_seconds=0.3)
    assert time.monotonic() - started < 3


async def test_sql_errors_are_not_retryable_and_carry_the_database_message(backend):
    with pytest.raises(NonRetryableError, match="nope") as caught:
        await query(backend, "SELECT * FROM nope")
    assert ('relation "nope" does not exist' in str(caught.value)) or (
        "no such table: nope" in str(caught.value)
    )
    with pytest.raises(NonRetryableError, match="database_query: "):
        await query(backend, f"SELECT {ph(backend)}, {ph(backend)}", params=[1])


async def test_postgres_connection_failure_is_retryable(settings):
    settings.FLOWMATRX_QUERY_DATABASES = {"down": f"postgres://postgres@127.0.0.1:{free_port()}/x"}
    with pytest.raises(StepError, match="cannot connect to 'down'") as caught:
        await query("down", "SELECT 1")
    assert caught.value.retryable


async def test_sqlite_missing_file_is_retryable(settings, tmp_path):
    settings.FLOWMATRX_QUERY_DATABASES = {"gone": f"sqlite:///{tmp_path / 'missing.db'}"}
    with pytest.raises(StepError, match="cannot open 'gone'") as caught:
        await query("gone", "SELECT 1", read_only=False)
    assert caught.value.retryable
    assert not (tmp_path / "missing.db").exists()


# -- connections ------------------------------------------------------------------------------


async def test_unknown_connection_lists_the_configured_ones(settings):
    settings.FLOWMATRX_QUERY_DATABASES = {"reports": "sqlite:////tmp/r.db", "crm": "sqlite:///c"}
    with pytest.raises(NonRetryableError, match=r"unknown connection 'x'.*: crm, reports"):
        await query("x", "SELECT 1")
    settings.FLOWMATRX_QUERY_DATABASES = {}
    with pytest.raises(NonRetryableError, match=r"none \(set FLOWMATRX_QUERY_DATABASES\)"):
        await query("x", "SELECT 1")


def app_database_urls(settings):
    db = settings.DATABASES["default"]
    names = [db["NAME"], (db.get("TEST") or {}).get("NAME")]
    if "sqlite" in db["ENGINE"]:
        return [f"sqlite:///{name}" for name in names if name]
    port = db.get("PORT") or 5432
    return [
        f"postgres://{db.get('USER') or 'postgres'}@{host}:{port}/{name}"
        for name in names
        if name
        for host in ("localhost", "127.0.0.1")
    ]


async def test_the_app_database_is_never_reachable(settings):
    settings.FLOWMATRX_QUERY_DATABASES = {}
    for name in settings.DATABASES:  # the app's own aliases are not connection names
        with pytest.raises(NonRetryableError, match="unknown connection"):
            await query(name, "SELECT 1")
    urls = app_database_urls(settings)
    assert urls
    for url in urls:
        settings.FLOWMATRX_QUERY_DATABASES = {"app": url}
        with pytest.raises(NonRetryableError, match="is Flow Matrx's own database"):
            await query("app", "SELECT 1")


async def test_unsupported_urls_are_refused(settings):
    settings.FLOWMATRX_QUERY_DATABASES = {"my": "mysql://u@h/db", "junk": "not a url"}
    for name in ("my", "junk"):
        with pytest.raises(NonRetryableError, match="must be a postgres:// or sqlite:/// URL"):
            await query(name, "SELECT 1")


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"query": "SELECT 1"}, "needs 'connection'"),
        ({"connection": "lite", "query": "  "}, "needs 'query'"),
        ({"connection": "lite", "query": "SELECT 1", "params": "x"}, "'params' must be"),
        ({"connection": "lite", "query": "SELECT 1", "max_rows": 0}, "'max_rows' must be"),
        ({"connection": "lite", "query": "SELECT 1", "max_rows": True}, "'max_rows' must be"),
        ({"connection": "lite", "query": "SELECT 1", "read_only": "no"}, "'read_only' must be"),
        ({"connection": "lite", "query": "SELECT 1", "timeout_seconds": 0}, "'timeout_seconds'"),
    ],
)
async def test_bad_config_is_a_clear_error(lite, config, message):
    with pytest.raises(NonRetryableError, match=message):
        await database_query.execute(config, CONTEXT)


# -- values -----------------------------------------------------------------------------------


async def test_postgres_values_are_json_safe(pg):
    out = await query(pg, "SELECT * FROM items WHERE id = %s", params=[2])
    row = out["rows"][0]
    assert row == {
        "id": 2,
        "name": "banana",
        "price": 2.5,
        "born": "2024-01-02",
        "seen": "2024-01-02T12:30:00+00:00",
        "blob": "Av8=",
        "uid": str(UID),
        "meta": {"i": 2, "nested": ["banana"]},
        "tags": ["banana", "fruit"],
        "ratio": 0.5,
        "span": 120.0,
    }
    json.dumps(out, allow_nan=False)


async def test_sqlite_values_are_json_safe(lite):
    out = await query(lite, "SELECT * FROM items WHERE id = ?", params=[1])
    assert out["rows"] == [{"id": 1, "name": "apple", "price": 1.5, "blob": "Af8="}]


def test_json_safe_conversions():
    assert json_safe(Decimal("12.30")) == 12.3
    assert json_safe(Decimal("100")) == 100
    assert json_safe(Decimal("1.2345678901234567890123")) == "1.2345678901234567890123"
    assert json_safe(Decimal("NaN")) == "NaN"
    assert json_safe(float("inf")) == "inf"
    assert json_safe(datetime(2024, 5, 1, 8, 0)) == "2024-05-01T08:00:00"
    assert json_safe(memoryview(b"\x00\x01")) == "AAE="
    assert json_safe(timedelta(hours=1)) == 3600.0
    assert json_safe({"k": (UID, None, True)}) == {"k": [str(UID), None, True]}
