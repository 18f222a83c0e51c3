"""/catalog: the step types and functions the builder offers."""

from engine.catalog import function_catalog, step_catalog


def test_the_step_catalog_lists_every_step_type(api, db):
    response = api.get("/catalog/steps")
    assert response.status_code == 200
    body = response.json()
    assert body["next_cursor"] is None
    assert [s["type"] for s in body["items"]] == [s["type"] for s in step_catalog()]
    approval = next(s for s in body["items"] if s["type"] == "wait_for_approval")
    assert approval["waits"] is True and approval["category"] and approval["label"]
    assert approval["config_schema"]["type"] == "object"
    assert "config" in approval["node_schema"]["properties"]


def test_the_function_catalog_lists_every_function(api, db):
    body = api.get("/catalog/functions").json()
    assert body["items"] == function_catalog() and body["items"]
    assert {"name", "label", "description", "input_schema", "output_schema"} <= set(
        body["items"][0]
    )
