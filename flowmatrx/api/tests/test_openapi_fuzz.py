"""Schema-driven fuzzing: schemathesis generates valid and invalid requests for every
operation of the OpenAPI document and sends them to the Django app, authenticated with an
API key. No answer may be a 5xx, and every answer must be one the document declares, in
the declared shape."""

import os

import pytest
import schemathesis
from django.conf import settings as django_settings
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR

from flowmatrx.api import api
from flowmatrx.api.tests.conftest import new_key
from runs import lifecycle
from runs.models import Event
from workflows.models import Workflow

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES = int(os.environ.get("FLOWMATRX_FUZZ_EXAMPLES", "25"))
"""Per operation; raise it for a deeper local run."""

# Hypothesis keeps caches; keep them with the other generated files, out of the work tree.
set_hypothesis_home_dir(django_settings.VAR_DIR / "hypothesis")

OPERATIONS = [
    (method.upper(), path)
    for path, operations in api.get_openapi_schema()["paths"].items()
    for method in operations
]


class InTestTransaction:
    """Django's WSGI app, minus the end-of-request connection cleanup that would close the
    test's transaction (as Django's own test client does)."""

    def __init__(self):
        self.handler = WSGIHandler()

    def __call__(self, environ, start_response):
        request_started.disconnect(close_old_connections)
        request_finished.disconnect(close_old_connections)
        try:
            result = self.handler(environ, start_response)
            try:
                body = b"".join(result)
            finally:
                result.close()
        finally:
            request_started.connect(close_old_connections)
            request_finished.connect(close_old_connections)
        return [body]


@pytest.fixture(scope="module")
def schema():
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", InTestTransaction())


@pytest.fixture
def known_ids(alice, linear_definition):
    """Ids of real rows, so the fuzzer also gets past the 404s."""
    draft = Workflow.objects.create(name="Fuzz", definition=linear_definition, created_by=alice)
    published = Workflow.objects.create(
        name="Fuzz published", definition=linear_definition, created_by=alice
    ).publish()
    run = lifecycle.start_run(published, {}, created_by=alice)
    Event.objects.create(name="fuzz.happened", data={"a": 1})
    return {"workflow_id": [str(draft.pk), str(published.pk)], "run_id": [str(run.pk)]}


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_no_request_makes_a_server_error(schema, method, path, alice, known_ids):
    operation = schema[path][method]
    headers = {"Authorization": f"Bearer {new_key(alice)}"}
    strategies = [
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    ]
    names = [p for p in known_ids if "{" + p + "}" in path]
    if names:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategies.append(
                st.fixed_dictionaries({n: st.sampled_from(known_ids[n]) for n in names}).flatmap(
                    lambda ids, mode=mode: operation.as_strategy(mode, path_parameters=ids)
                )
            )

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=os.environ.get("FLOWMATRX_FUZZ_RANDOM") != "1",
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=st.one_of(strategies))
    def check(case):
        response = case.call(headers=headers)
        case.validate_response(response, checks=CHECKS, headers=headers)

    check()


# ------------------------------------------------------------------- the document itself


def test_the_openapi_document_declares_every_answer(client, db):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.1") and document["info"]["title"] == "Flow Matrx API"
    OPENAPI_31_VALIDATOR.validate(document)  # the OpenAPI 3.1 meta-schema
    schemes = document["components"]["securitySchemes"]
    assert schemes["ApiKeyAuth"] == {"type": "http", "scheme": "bearer"}
    for path, operations in document["paths"].items():
        assert path.startswith("/api/v1/") and not path.endswith("/")
        for method, operation in operations.items():
            codes = set(operation["responses"])
            assert {"401", "403"} <= codes, (method, path)
            assert any(code.startswith("2") for code in codes), (method, path)
            for code, answer in operation["responses"].items():
                if code != "204":
                    assert "schema" in answer["content"]["application/json"], (method, path, code)
            assert operation["security"] == [{"ApiKeyAuth": []}, {"SessionAuth": []}]


def test_the_docs_page_works_without_internet(client, db):
    page = client.get("/api/v1/docs")
    assert page.status_code == 200
    html = page.content.decode()
    assert "/api/v1/openapi.json" in html and "cdn" not in html.lower()
    for asset in ("swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-init.js"):
        assert f"/api/v1/docs/assets/{asset}" in html
        response = client.get(f"/api/v1/docs/assets/{asset}")
        assert response.status_code == 200 and len(response.content) > 1000
    assert client.get("/api/v1/docs/assets/secret.py").status_code == 404
