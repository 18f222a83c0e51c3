"""Bad input at the boundary: 400 for malformed JSON, 413 for oversized bodies, 422 with the
place for everything else; a refused request changes nothing."""

import pytest

from flowmatrx.api.tests.conftest import assert_error, counts


@pytest.fixture
def targets(workflow):
    """Endpoints with a body, each with a valid body to spoil."""
    return [
        ("POST", "/workflows"),
        ("PUT", f"/workflows/{workflow.id}"),
        ("POST", f"/workflows/{workflow.id}/run"),
        ("POST", "/events"),
    ]


@pytest.mark.parametrize(
    "raw",
    ['{"name": ', "{'name': 'x'}", '{"name": "x",}', "nul", '{"name": "x"} trailing'],
)
def test_malformed_json_is_400(api, targets, raw):
    before = counts()
    for method, path in targets:
        body = assert_error(api.request(method, path, raw=raw), 400, loc=["body"])
        assert "malformed JSON" in body["detail"]
    assert counts() == before


def test_a_body_that_is_not_utf8_is_400(api, targets):
    for method, path in targets:
        assert_error(api.request(method, path, raw=b'{"name": "\xff"}'), 400, loc=["body"])


@pytest.mark.parametrize(
    "raw",
    [
        '{"name": "x", "input": {"n": NaN}}',
        '{"name": "x", "input": {"n": Infinity}}',
        '{"name": "x", "input": {"n": -Infinity}}',
        '{"name": "x", "input": {"n": 1e999}}',
    ],
)
def test_non_finite_numbers_are_422(api, targets, raw):
    before = counts()
    for method, path in targets:
        body = assert_error(api.request(method, path, raw=raw), 422, loc=["body"])
        assert "finite" in body["detail"]
    assert counts() == before


@pytest.mark.parametrize(
    ("raw", "loc"),
    [
        ('{"name": "a\\u0000b"}', ["body", "name"]),
        ('{"name": "x", "data": {"list": ["ok", "\\u0000"]}}', ["body", "data", "list", 1]),
        ('{"name": "\\ud800"}', ["body", "name"]),
        ('{"name": "x", "data": {"k": "\\udfff tail"}}', ["body", "data", "k"]),
        ('{"name": "x", "data": {"bad\\u0000key": 1}}', ["body", "data"]),
    ],
)
def test_nul_characters_and_lone_surrogates_are_422_where_they_are(api, db, raw, loc):
    before = counts()
    body = assert_error(api.post("/events", raw=raw), 422, loc=loc)
    assert "NUL" in body["detail"] or "surrogate" in body["detail"]
    assert counts() == before


def test_a_nul_in_a_definition_leaves_the_draft_unchanged(api, workflow):
    before = (workflow.definition, workflow.updated_at)
    raw = '{"definition": {"nodes": [{"id": "a\\u0000"}], "edges": []}}'
    assert_error(api.put(f"/workflows/{workflow.id}", raw=raw), 422)
    workflow.refresh_from_db()
    assert (workflow.definition, workflow.updated_at) == before


def test_very_deep_nesting_is_422(api, db):
    deep = "[" * 150 + "]" * 150
    assert_error(api.post("/events", raw=f'{{"name": "x", "data": {deep}}}'), 422)
    deeper = "[" * 100_000 + "]" * 100_000
    assert_error(api.post("/events", raw=f'{{"name": "x", "data": {deeper}}}'), 422)


def test_a_huge_integer_literal_is_422(api, db):
    assert_error(api.post("/events", raw='{"name": "x", "data": ' + "9" * 5000 + "}"), 422)


def test_a_body_over_the_limit_is_413(api, targets, settings):
    settings.FLOWMATRX_API_MAX_BODY_BYTES = 1000
    before = counts()
    padding = "x" * 1000
    for method, path in targets:
        response = api.request(method, path, {"name": "x", "description": padding})
        assert_error(response, 413, loc=["body"])
    assert counts() == before
    assert api.post("/events", {"name": "x", "data": "small"}).status_code == 201


def test_a_body_over_djangos_own_limit_is_413_too(api, db, settings):
    settings.FLOWMATRX_API_MAX_BODY_BYTES = 10 * 1024 * 1024
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    assert_error(api.post("/events", {"name": "x", "data": "x" * 2000}), 413)


@pytest.mark.parametrize(
    ("path_suffix", "body", "loc"),
    [
        ("/run", {"max_concurrency": "3"}, ["body", "max_concurrency"]),
        ("/run", {"max_concurrency": 2.5}, ["body", "max_concurrency"]),
        ("/run", {"input": "x"}, ["body", "input"]),
        ("", {"name": ["x"]}, ["body", "name"]),
        ("", {"definition": {"nodes": [], "edges": "none"}}, ["body", "definition", "edges"]),
        ("", {"input_schema": "object"}, ["body", "input_schema"]),
    ],
)
def test_wrong_types_are_422_without_coercion(api, workflow, path_suffix, body, loc):
    method = "POST" if path_suffix else "PUT"
    before = counts()
    assert_error(api.request(method, f"/workflows/{workflow.id}{path_suffix}", body), 422, loc=loc)
    assert counts() == before


@pytest.mark.parametrize("raw", ["[]", '"name"', "3", "null", ""])
def test_a_body_that_is_not_an_object_is_422(api, db, raw):
    assert_error(api.post("/workflows", raw=raw), 422)


def test_unknown_fields_are_named(api, db):
    body = assert_error(api.post("/workflows", {"name": "x", "colour": "red", "size": 1}), 422)
    assert sorted(e["loc"] for e in body["errors"]) == [["body", "colour"], ["body", "size"]]
    assert "(and 1 more)" in body["detail"]


def test_unknown_paths_answer_404_in_the_error_shape(api, db):
    assert_error(api.get("/nothing/here"), 404)
    assert_error(api.get("/workflows/"), 404)  # no trailing slashes
