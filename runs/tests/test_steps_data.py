"""database_query, function_call and send_email inside real runs (engine + Django store)."""

import sqlite3

import pytest
from django.core import mail

from engine.handlers import database_query, function_call, send_email  # noqa: F401
from engine.statuses import RunStatus
from runs.tests.conftest import edge, event_types, node


@pytest.fixture
def crm(settings, tmp_path):
    path = tmp_path / "crm.sqlite3"
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, email TEXT)")
        conn.execute("INSERT INTO customers VALUES (7, 'Ada Lovelace', 'ada@example.com')")
    conn.close()
    settings.FLOWMATRX_QUERY_DATABASES = {"crm": f"sqlite:///{path}"}
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    return "crm"


def test_query_then_function_then_email(make_run, drive, crm):
    query = "SELECT name, email FROM customers WHERE id = :id"
    run = make_run(
        [
            node("q", "database_query", {"connection": crm, "query": query, "params": {"id": 7}}),
            node(
                "slug",
                "function_call",
                {"function": "text.slugify", "args": {"text": "{{ q.rows[0].name }}"}},
            ),
            node(
                "mail",
                "send_email",
                {
                    "to": "{{ q.rows[0].email }}",
                    "subject": "Welcome {{ q.rows[0].name }}",
                    "body": "Your page: /u/{{ slug.slug }}",
                },
            ),
        ],
        [edge("q", "slug"), edge("slug", "mail")],
    )
    run = drive(run)

    assert run.status == RunStatus.COMPLETED, run.error
    assert run.context["q"] == {
        "rows": [{"name": "Ada Lovelace", "email": "ada@example.com"}],
        "count": 1,
        "truncated": False,
        "affected_rows": None,
    }
    assert run.context["slug"] == {"slug": "ada-lovelace"}
    [message] = mail.outbox
    assert message.to == ["ada@example.com"]
    assert message.subject == "Welcome Ada Lovelace"
    assert message.body == "Your page: /u/ada-lovelace"
    assert message.extra_headers["X-Flowmatrx-Idempotency-Key"] == f"{run.pk}:mail"
    assert run.context["mail"] == {
        "sent_to": ["ada@example.com"],
        "message_id": message.extra_headers["Message-ID"],
    }


def test_refused_query_fails_at_once_without_retries(make_run, drive, crm):
    config = {"connection": crm, "query": "SELECT 1; DELETE FROM customers"}
    run = drive(make_run([node("q", "database_query", config, max_attempts=3, backoff_base=0)]))

    assert run.status == RunStatus.FAILED
    assert "only one SQL statement" in run.error
    assert event_types(run, "q") == ["step.started", "step.failed"]


def test_unknown_function_fails_the_step_with_a_hint(make_run, drive):
    run = drive(make_run([node("f", "function_call", {"function": "text.slugfy", "args": {}})]))

    assert run.status == RunStatus.FAILED
    assert "did you mean 'text.slugify'" in run.error
