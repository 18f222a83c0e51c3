"""The step and function catalogs served to the builder and the API."""

import json

import pytest
from jsonschema import Draft202012Validator

from engine.catalog import (
    CATEGORY_ORDER,
    NODE_FIELDS,
    function_catalog,
    step_catalog,
    steps_by_category,
)
from engine.handlers import database_query, function_call, send_email  # noqa: F401

MINE = {"database_query": "Data", "send_email": "Communication", "function_call": "Code"}


def entries():
    return {entry["type"]: entry for entry in step_catalog()}


def test_every_step_entry_has_metadata_and_valid_schemas():
    catalog = step_catalog()
    assert catalog
    json.dumps(catalog)  # served as JSON as is
    for entry in catalog:
        keys = {"type", "label", "category", "description", "icon", "config_schema"}
        assert keys | {"node_schema", "waits"} == set(entry)
        assert entry["label"] and entry["description"] and entry["icon"]
        Draft202012Validator.check_schema(entry["config_schema"])
        Draft202012Validator.check_schema(entry["node_schema"])
        assert entry["node_schema"]["properties"]["config"] is entry["config_schema"]


def test_my_step_types_are_listed_with_strict_schemas():
    found = entries()
    for name, category in MINE.items():
        assert found[name]["category"] == category
        schema = found[name]["config_schema"]
        assert schema["type"] == "object" and schema["additionalProperties"] is False
        assert set(schema["required"]) <= set(schema["properties"])
        assert all(prop.get("description") for prop in schema["properties"].values())
    assert found["database_query"]["config_schema"]["properties"]["max_rows"]["default"] == 1000
    assert found["database_query"]["config_schema"]["properties"]["read_only"]["default"] is True
    assert found["delay"]["waits"] is True and found["database_query"]["waits"] is False


def test_catalog_is_ordered_by_category_then_label():
    catalog = step_catalog()
    rank = {c: i for i, c in enumerate(CATEGORY_ORDER)}
    keys = [(rank.get(e["category"], len(rank)), e["category"], e["label"]) for e in catalog]
    assert keys == sorted(keys)
    groups = steps_by_category()
    assert [g["category"] for g in groups][:1] == ["Flow"]
    assert sum(len(g["steps"]) for g in groups) == len(catalog)
    assert len({g["category"] for g in groups}) == len(groups)


def test_node_schema_checks_the_common_fields_and_the_config():
    validator = Draft202012Validator(entries()["database_query"]["node_schema"])
    good = {
        "label": "Load users",
        "config": {"connection": "crm", "query": "SELECT 1", "max_rows": 10},
        "on_error": "continue",
        "max_attempts": 3,
        "backoff_strategy": "exponential",
        "backoff_base": 1.5,
        "timeout_seconds": None,
        "join": "any",
    }
    assert list(validator.iter_errors(good)) == []
    assert list(validator.iter_errors({"config": {"connection": "c", "query": "q"}})) == []
    bad = {
        "on_error": "explode",
        "max_attempts": 0,
        "backoff_strategy": "random",
        "backoff_base": -1,
        "timeout_seconds": 0,
        "join": "some",
        "config": {"connection": "c"},
        "colour": "red",
    }
    paths = {tuple(e.path) for e in validator.iter_errors(bad)}
    assert {(k,) for k in NODE_FIELDS if k != "label"} <= paths
    assert ("config",) in paths and () in paths  # missing query; unknown "colour"


@pytest.mark.parametrize("field", ["on_error", "backoff_strategy", "join"])
def test_node_fields_offer_the_engine_choices(field):
    assert NODE_FIELDS[field]["default"] in NODE_FIELDS[field]["enum"]


def test_function_catalog_lists_builtins_with_schemas():
    catalog = function_catalog()
    names = [entry["name"] for entry in catalog]
    assert names == sorted(names)
    assert {"text.slugify", "crypto.hash", "data.pick"} <= set(names)
    for entry in catalog:
        assert set(entry) == {"name", "label", "description", "input_schema", "output_schema"}
        Draft202012Validator.check_schema(entry["input_schema"])
        Draft202012Validator.check_schema(entry["output_schema"])
    json.dumps(catalog)


def test_function_catalog_includes_configured_functions(settings):
    settings.FLOWMATRX_FUNCTIONS = ["engine.tests.sample_functions"]
    entry = {e["name"]: e for e in function_catalog()}["tests.sample.double"]
    assert entry["description"] == "Double a number."
    assert entry["input_schema"]["required"] == ["n"]
