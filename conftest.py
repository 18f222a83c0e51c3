"""Fixtures shared by every app's tests: named users and workflows, both database backends."""

import inspect

import pytest
from asgiref.sync import SyncToAsync
from django.db import connection, connections

from workflows.models import Workflow


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _close_async_thread_connections(request):
    """After an async test, close the connections its database_sync_to_async calls opened
    in asgiref's one thread for thread-sensitive work: left open, the last one keeps the
    test database from being dropped at the end of the session."""
    yield
    if inspect.iscoroutinefunction(request.function):
        SyncToAsync.single_thread_executor.submit(connections.close_all).result()


@pytest.fixture
def start():
    """start(handler) -> a real HTTP server on loopback (engine/tests/http_servers.py)."""
    from engine.tests.http_servers import loopback_servers

    with loopback_servers() as start:
        yield start


@pytest.fixture
def loopback_allowed(settings):
    """Let steps reach the loopback test servers past the private-network guard."""
    settings.FLOWMATRX_ALLOW_PRIVATE_NETWORKS = True


def pytest_collection_modifyitems(config, items):
    """`@pytest.mark.postgres` tests are skipped when the suite runs on SQLite."""
    from django.conf import settings

    if settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL (DATABASE_URL)")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def alice(django_user_model):
    """An admin."""
    return django_user_model.objects.create_superuser("alice", "alice@example.com", "password")


@pytest.fixture
def bob(django_user_model):
    """A member (accounts.roles)."""
    from accounts.users import create_user

    return create_user("bob", "member", "password", email="bob@example.com")


@pytest.fixture
def vera(django_user_model):
    """A viewer (accounts.roles)."""
    from accounts.users import create_user

    return create_user("vera", "viewer", "password", email="vera@example.com")


@pytest.fixture
def linear_definition():
    return {
        "nodes": [
            {"id": "a", "type": "transform", "data": {"config": {"mapping": {"x": 1}}}},
            {"id": "b", "type": "transform", "data": {"config": {"mapping": {"y": "{{ a.x }}"}}}},
        ],
        "edges": [{"id": "a-b", "source": "a", "target": "b"}],
        "viewport": {"x": 0, "y": 0, "zoom": 1},
        "settings": {},
    }


@pytest.fixture
def workflow(db, alice, linear_definition):
    return Workflow.objects.create(name="Greeting", definition=linear_definition, created_by=alice)


@pytest.fixture
def db_vendor(db):
    return connection.vendor
