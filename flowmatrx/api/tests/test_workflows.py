"""/workflows: drafts, validation errors on save, versions, publish, archive, duplicate,
delete, and the 404/409/422 answers."""

import pytest

from engine.statuses import WorkflowStatus
from flowmatrx.api.tests.conftest import assert_error, counts
from runs import lifecycle
from runs.models import Run
from workflows.models import Workflow

WORKFLOW_FIELDS = {
    "id",
    "name",
    "description",
    "version",
    "status",
    "definition",
    "input_schema",
    "created_by",
    "created_at",
    "updated_at",
}


def test_creating_a_workflow_answers_201_with_a_draft(api, linear_definition):
    response = api.post(
        "/workflows",
        {"name": " Greeting ", "description": "hi", "definition": linear_definition},
    )
    assert response.status_code == 201
    body = response.json()
    assert set(body) >= WORKFLOW_FIELDS
    workflow = Workflow.objects.get(pk=body["id"])
    assert body["name"] == "Greeting" and body["description"] == "hi"
    assert (body["version"], body["status"], body["created_by"]) == (1, "draft", "alice")
    assert body["definition"] == linear_definition == workflow.definition
    assert body["lineage_id"] == body["id"] and body["errors"] == []
    assert body["created_at"].endswith("Z") and body["published_at"] is None


def test_a_workflow_without_a_definition_starts_empty(api):
    body = api.post("/workflows", {"name": "Empty"}).json()
    assert body["definition"]["nodes"] == [] and body["definition"]["edges"] == []


def test_a_draft_is_saved_with_an_invalid_definition_and_its_errors(api, invalid_definition):
    response = api.post("/workflows", {"name": "WIP", "definition": invalid_definition})
    assert response.status_code == 201
    body = response.json()
    assert body["definition"] == invalid_definition
    locs = [e["loc"] for e in body["errors"]]
    assert ["definition", "nodes", "a", "type"] in locs
    assert any(loc[:3] == ["definition", "edges", "e"] for loc in locs)
    assert all(e["msg"] for e in body["errors"])


def test_the_definition_keeps_unknown_canvas_keys(api):
    definition = {"nodes": [], "edges": [], "meta": {"theme": "dark"}}
    body = api.post("/workflows", {"name": "x", "definition": definition}).json()
    assert body["definition"] == definition


@pytest.mark.parametrize(
    ("definition", "loc"),
    [
        ([], ["body", "definition"]),
        ({"nodes": []}, ["body", "definition", "edges"]),
        ({"nodes": {}, "edges": []}, ["body", "definition", "nodes"]),
        ({"nodes": [], "edges": [], "settings": []}, ["body", "definition", "settings"]),
    ],
)
def test_a_definition_must_have_the_canvas_outline(api, definition, loc):
    before = counts()
    assert_error(api.post("/workflows", {"name": "x", "definition": definition}), 422, loc=loc)
    assert counts() == before


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({}, ["body", "name"]),
        ({"name": "   "}, ["body", "name"]),
        ({"name": "x" * 201}, ["body", "name"]),
        ({"name": 3}, ["body", "name"]),
        ({"name": "x", "status": "published"}, ["body", "status"]),
        ({"name": "x", "input_schema": {"type": "nope"}}, ["body", "input_schema"]),
        ({"name": "x", "input_schema": []}, ["body", "input_schema"]),
    ],
)
def test_creating_refuses_invalid_fields(api, body, loc):
    before = counts()
    assert_error(api.post("/workflows", body), 422, loc=loc)
    assert counts() == before


def test_listing_shows_the_latest_version_of_each_workflow(api, alice, published):
    draft = published.new_version(alice)
    other = Workflow.objects.create(name="Other", created_by=alice)
    response = api.get("/workflows")
    assert response.status_code == 200
    body = response.json()
    assert {w["id"] for w in body["items"]} == {str(draft.id), str(other.id)}
    assert body["next_cursor"] is None
    assert all(w["errors"] is None for w in body["items"])


def test_listing_filters_by_status_and_name(api, alice, published):
    Workflow.objects.create(name="Invoice sync", created_by=alice)
    names = lambda **q: sorted(w["name"] for w in api.get("/workflows", **q).json()["items"])  # noqa: E731
    assert names(status="published") == ["Greeting"]
    assert names(status="draft") == ["Invoice sync"]
    assert names(q="invoice") == ["Invoice sync"]
    assert names(q="nothing") == []
    assert_error(api.get("/workflows", status="paused"), 422, loc=["query", "status"])


def test_listing_pages_with_a_cursor(api, alice):
    for i in range(5):
        Workflow.objects.create(name=f"W{i}", created_by=alice)
    seen, cursor = [], None
    while True:
        query = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        body = api.get("/workflows", **query).json()
        assert len(body["items"]) <= 2
        seen += [w["name"] for w in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == ["W4", "W3", "W2", "W1", "W0"]


@pytest.mark.parametrize("limit", [0, 201, "x"])
def test_listing_refuses_a_bad_limit(api, db, limit):
    assert_error(api.get("/workflows", limit=limit), 422, loc=["query", "limit"])


def test_getting_a_workflow_includes_its_validation_errors(api, alice, invalid_definition):
    workflow = Workflow.objects.create(name="x", definition=invalid_definition, created_by=alice)
    body = api.get(f"/workflows/{workflow.id}").json()
    assert body["id"] == str(workflow.id) and body["errors"]


@pytest.mark.parametrize("bad_id", ["not-a-uuid", "00000000-0000-0000-0000-000000000000", "1"])
@pytest.mark.parametrize(
    ("method", "suffix"),
    [
        ("GET", ""),
        ("PUT", ""),
        ("DELETE", ""),
        ("POST", "/publish"),
        ("POST", "/validate"),
        ("POST", "/duplicate"),
        ("POST", "/run"),
        ("POST", "/new_version"),
        ("POST", "/archive"),
        ("GET", "/versions"),
    ],
)
def test_unknown_or_malformed_ids_are_404(api, db, bad_id, method, suffix):
    body = {} if method in ("PUT", "POST") else None
    response = api.request(method, f"/workflows/{bad_id}{suffix}", body)
    assert_error(response, 404, loc=["path", "workflow_id"])


def test_a_draft_is_edited_with_put(api, workflow, invalid_definition):
    response = api.put(
        f"/workflows/{workflow.id}",
        {"name": "Renamed", "definition": invalid_definition, "input_schema": {"type": "object"}},
    )
    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "Renamed" and body["errors"]
    workflow.refresh_from_db()
    assert workflow.definition == invalid_definition
    assert workflow.input_schema == {"type": "object"}
    assert workflow.description == ""  # left out: unchanged


def test_put_on_a_published_version_is_409_and_says_how_to_edit(api, published):
    before = published.updated_at
    response = api.put(f"/workflows/{published.id}", {"name": "Renamed"})
    body = assert_error(response, 409, contains="/new_version")
    assert f"/api/v1/workflows/{published.id}/new_version" in body["detail"]
    published.refresh_from_db()
    assert published.name == "Greeting" and published.updated_at == before


def test_put_refuses_null_for_required_fields_and_unknown_fields(api, workflow):
    assert_error(api.put(f"/workflows/{workflow.id}", {"name": None}), 422, loc=["body", "name"])
    assert_error(api.put(f"/workflows/{workflow.id}", {"version": 3}), 422, loc=["body", "version"])


def test_publishing_a_valid_draft_freezes_it(api, workflow):
    response = api.post(f"/workflows/{workflow.id}/publish")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "published" and body["published_at"]
    assert Workflow.objects.get(pk=workflow.pk).status == WorkflowStatus.PUBLISHED


def test_publishing_an_invalid_draft_is_422_with_every_problem(api, alice, invalid_definition):
    workflow = Workflow.objects.create(name="x", definition=invalid_definition, created_by=alice)
    body = assert_error(api.post(f"/workflows/{workflow.id}/publish"), 422)
    problems = workflow.validate()
    assert len(body["errors"]) == len(problems) >= 2
    assert ["definition", "nodes", "a", "type"] in [e["loc"] for e in body["errors"]]
    assert Workflow.objects.get(pk=workflow.pk).is_draft


def test_publishing_twice_is_409(api, published):
    assert_error(api.post(f"/workflows/{published.id}/publish"), 409)


def test_validate_reports_without_changing_anything(api, alice, workflow, invalid_definition):
    assert api.post(f"/workflows/{workflow.id}/validate").json() == {"valid": True, "errors": []}
    bad = Workflow.objects.create(name="x", definition=invalid_definition, created_by=alice)
    body = api.post(f"/workflows/{bad.id}/validate").json()
    assert body["valid"] is False and body["errors"]
    assert all(e["loc"][0] == "definition" for e in body["errors"])


def test_definition_problems_name_their_node_or_edge(api, alice, invalid_definition):
    bad = Workflow.objects.create(name="x", definition=invalid_definition, created_by=alice)
    for body in (
        api.post(f"/workflows/{bad.id}/validate").json(),
        api.get(f"/workflows/{bad.id}").json(),
        api.post(f"/workflows/{bad.id}/publish").json(),
    ):
        by_loc = {tuple(e["loc"]): e for e in body["errors"]}
        node_problem = by_loc[("definition", "nodes", "a", "type")]
        assert node_problem["node_id"] == "a" and node_problem["code"]
        assert any(e.get("edge_id") == "e" for e in body["errors"])


def test_new_version_makes_draft_n_plus_1_and_versions_lists_them(api, published):
    response = api.post(f"/workflows/{published.id}/new_version")
    assert response.status_code == 201
    draft = response.json()
    assert (draft["version"], draft["status"]) == (2, "draft")
    assert draft["lineage_id"] == str(published.lineage)
    assert_error(api.post(f"/workflows/{published.id}/new_version"), 409, contains="already")

    versions = api.get(f"/workflows/{draft['id']}/versions").json()
    assert [(v["version"], v["status"]) for v in versions["items"]] == [
        (2, "draft"),
        (1, "published"),
    ]
    assert versions["next_cursor"] is None


def test_archive_stops_a_published_version(api, published):
    response = api.post(f"/workflows/{published.id}/archive")
    assert response.status_code == 200 and response.json()["status"] == "archived"
    assert_error(api.post(f"/workflows/{published.id}/archive"), 409)
    assert_error(api.post(f"/workflows/{published.id}/run", {}), 409, contains="archived")


def test_archiving_a_draft_is_409(api, workflow):
    assert_error(api.post(f"/workflows/{workflow.id}/archive"), 409)


def test_duplicate_makes_a_new_workflow(api, published):
    response = api.post(f"/workflows/{published.id}/duplicate")
    assert response.status_code == 201
    copy = response.json()
    assert copy["name"] == "Greeting (copy)" and copy["version"] == 1
    assert copy["status"] == "draft" and copy["lineage_id"] == copy["id"] != str(published.id)
    assert copy["definition"] == published.definition
    named = api.post(f"/workflows/{published.id}/duplicate", {"name": "Mine"}).json()
    assert named["name"] == "Mine"
    assert_error(api.post(f"/workflows/{published.id}/duplicate", {"nom": "x"}), 422)


def test_deleting_a_draft_removes_it_with_its_test_runs(api, alice, workflow):
    lifecycle.start_run(workflow, {}, created_by=alice)
    response = api.delete(f"/workflows/{workflow.id}")
    assert response.status_code == 204 and response.content == b""
    assert not Workflow.objects.filter(pk=workflow.pk).exists()
    assert not Run.objects.exists()


def test_deleting_a_published_version_is_409(api, published):
    assert_error(api.delete(f"/workflows/{published.id}"), 409)
    assert Workflow.objects.filter(pk=published.pk).exists()


def test_the_workflow_resource_carries_its_webhook_url(api, workflow, linear_definition):
    assert api.get(f"/workflows/{workflow.id}").json()["webhook_url"] is None
    definition = {**linear_definition, "settings": {"triggers": [{"type": "webhook"}]}}
    body = api.put(f"/workflows/{workflow.id}", {"definition": definition}).json()
    url = body["webhook_url"]
    assert url.startswith("http://testserver/hooks/") and len(url.rsplit("/", 1)[1]) >= 40
    published = api.post(f"/workflows/{workflow.id}/publish").json()
    assert published["webhook_url"] == url
    draft = api.post(f"/workflows/{workflow.id}/new_version").json()
    assert draft["webhook_url"] == url, "the token is the same for every version"
    listed = api.get("/workflows").json()["items"]
    assert [w["webhook_url"] for w in listed] == [url]
    versions = api.get(f"/workflows/{workflow.id}/versions").json()["items"]
    assert [w["webhook_url"] for w in versions] == [url, url]
    assert api.post("/workflows", {"name": "Plain"}).json()["webhook_url"] is None


# ----------------------------------------------------------------------------- diff


def test_the_diff_of_two_versions_lists_what_changed(api, published):
    v2 = published.new_version()
    definition = v2.definition
    definition["nodes"][1]["data"]["config"]["mapping"] = {"y": "{{ a.x }}", "z": 2}
    definition["nodes"][0]["position"] = {"x": 40, "y": 0}
    definition["nodes"].append({"id": "c", "type": "delay", "data": {"config": {"seconds": 1}}})
    definition["edges"].append({"id": "b-c", "source": "b", "target": "c"})
    v2.definition = definition
    v2.save()

    response = api.get(f"/workflows/{published.id}/diff/{v2.id}")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["workflow_id"], body["other_id"]) == (str(published.id), str(v2.id))
    assert (body["from_version"], body["to_version"], body["identical"]) == (1, 2, False)
    assert body["nodes"]["added"] == [{"id": "c", "type": "delay", "label": ""}]
    assert [(c["id"], c["fields"], c["config_keys"]) for c in body["nodes"]["changed"]] == [
        ("b", ["config"], ["mapping"])
    ]
    assert [m["id"] for m in body["nodes"]["moved"]] == ["a"]
    assert body["edges"]["added"] == [
        {"id": "b-c", "source": "b", "target": "c", "source_handle": None}
    ]
    assert body["nodes"]["removed"] == body["edges"]["removed"] == []

    back = api.get(f"/workflows/{v2.id}/diff/{published.id}").json()
    assert back["nodes"]["removed"] == [{"id": "c", "type": "delay", "label": ""}]


def test_a_version_diffed_with_itself_is_identical(api, workflow):
    body = api.get(f"/workflows/{workflow.id}/diff/{workflow.id}").json()
    assert body["identical"] is True and body["nodes"]["changed"] == []


@pytest.mark.parametrize("which", ["workflow_id", "other_id"])
def test_the_diff_of_unknown_versions_is_404(api, workflow, which):
    unknown = "3f1c0c8e-0000-4000-8000-00000000abcd"
    ids = {"workflow_id": workflow.id, "other_id": workflow.id, which: unknown}
    response = api.get(f"/workflows/{ids['workflow_id']}/diff/{ids['other_id']}")
    assert_error(response, 404, loc=["path", which])
    assert_error(
        api.get(f"/workflows/{workflow.id}/diff/not-a-uuid"), 404, loc=["path", "other_id"]
    )


def test_versions_of_different_workflows_are_not_diffed(api, workflow, alice):
    other = workflow.duplicate(created_by=alice)
    response = api.get(f"/workflows/{workflow.id}/diff/{other.id}")
    assert_error(response, 404, loc=["path", "other_id"], contains="version of this workflow")


def test_the_diff_needs_credentials_and_the_read_scope(anonymous, api_as, alice, workflow):
    path = f"/workflows/{workflow.id}/diff/{workflow.id}"
    assert_error(anonymous.get(path), 401)
    assert api_as(alice, ["run"]).get(path).status_code == 403
    assert api_as(alice, ["read"]).get(path).status_code == 200


def test_the_diff_is_in_the_openapi_document(client, db):
    document = client.get("/api/v1/openapi.json").json()
    operation = document["paths"]["/api/v1/workflows/{workflow_id}/diff/{other_id}"]["get"]
    ok = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/DiffOut"}
    assert {"404", "401"} <= set(operation["responses"])
    properties = document["components"]["schemas"]["DiffOut"]["properties"]
    assert {"nodes", "edges", "settings", "identical", "from_version"} <= set(properties)
