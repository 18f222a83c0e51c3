"""The node config form generated from each step type's config schema: every registered
type (new ones are covered automatically), each kind of field, and parsing back."""

import json

import pytest
from django.http import QueryDict

import engine.handlers  # noqa: F401  (registers the built-in step types)
from engine.catalog import NODE_FIELDS
from engine.registry import registry
from workflows.config_form import (
    BOOLEAN,
    CONFIG_PREFIX,
    ENUM,
    INTEGER,
    JSON,
    JSON_OR_TEXT,
    NUMBER,
    SECRET,
    TEXT,
    TEXTAREA,
    NodeForm,
    field_kind,
    schema_types,
)

STEP_TYPES = registry.all()


def post(**values) -> QueryDict:
    data = QueryDict(mutable=True)
    for name, value in values.items():
        data[name] = value
    return data


def example(prop: dict):
    """A value the property accepts (its default, an enum value, or one of its type)."""
    if "default" in prop and prop["default"] not in (None, "", [], {}):
        return prop["default"]
    if "enum" in prop:
        return prop["enum"][-1]
    types = schema_types(prop) - {"null"}
    if "string" in types or not types:
        return "{{ input.value }}"
    if "integer" in types or "number" in types:
        return max(prop.get("minimum", 1), 1) if prop.get("maximum", 2) >= 1 else 0
    if "boolean" in types:
        return True
    if "array" in types:
        return []
    values = prop.get("additionalProperties")
    return {"k": example(values) if isinstance(values, dict) else "v"}


def as_posted(form: NodeForm, **changes) -> QueryDict:
    """What a browser posts for the unbound form as rendered (checked boxes only), with
    `changes` typed in (None: a box unchecked)."""
    data = QueryDict(mutable=True)
    for name, field in form.fields.items():
        value = form[name].value()
        if getattr(field.widget, "input_type", "") == "checkbox":
            if value:
                data[name] = "on"
        elif value is not None:
            data[name] = str(value)
    for name, value in changes.items():
        if value is None:
            data.pop(name, None)
        else:
            data[name] = value
    return data


@pytest.mark.parametrize("step_type", STEP_TYPES, ids=[t.name for t in STEP_TYPES])
def test_every_step_type_gets_a_field_per_config_property_and_the_common_fields(step_type):
    form = NodeForm(step_type, {})
    properties = step_type.config_schema.get("properties", {})
    required = set(step_type.config_schema.get("required", ()))
    expected = [CONFIG_PREFIX + key for key in properties] + list(NODE_FIELDS)
    assert list(form.specs) == expected
    for key, prop in properties.items():
        field = form.fields[CONFIG_PREFIX + key]
        spec = form.specs[CONFIG_PREFIX + key]
        assert field.required == (key in required and spec.kind not in (BOOLEAN, SECRET))
        assert field.help_text == prop.get("description", "")
        if "enum" in prop:
            assert spec.kind == ENUM
            assert [json.loads(c) for c, _ in field.choices if c] == prop["enum"]


@pytest.mark.parametrize("step_type", STEP_TYPES, ids=[t.name for t in STEP_TYPES])
def test_every_step_type_round_trips_a_filled_in_config(step_type):
    properties = step_type.config_schema.get("properties", {})
    config = {key: example(prop) for key, prop in properties.items()}
    if step_type.name == "for_each":
        config.update(step_type="transform", step_config={"mapping": {"i": "{{ item }}"}})
    if step_type.name == "condition":
        config["expression"] = "input.value == 1"
    if step_type.name == "wait_for_event":
        config["match"] = "event.data.id == input.value"
    data = {"label": "Step", "config": config, "max_attempts": 2, "on_error": "continue"}
    form = NodeForm(step_type, data, as_posted(NodeForm(step_type, data)))
    assert form.is_valid(), (form.errors, config)
    assert form.node_data_out == data


@pytest.mark.parametrize("step_type", STEP_TYPES, ids=[t.name for t in STEP_TYPES])
def test_every_step_type_refuses_a_blank_required_field(step_type):
    required = step_type.config_schema.get("required", ())
    form = NodeForm(step_type, {}, post())
    assert form.is_valid() == (not required)
    for key in required:
        assert CONFIG_PREFIX + key in form.errors


@pytest.mark.parametrize(
    ("prop", "kind"),
    [
        ({"type": "string"}, TEXT),
        ({"type": "string", "format": "multiline"}, TEXTAREA),
        ({"type": "string", "writeOnly": True}, SECRET),
        ({"type": ["string", "null"], "writeOnly": True}, SECRET),
        ({"type": "integer"}, INTEGER),
        ({"type": "number"}, NUMBER),
        ({"type": ["number", "null"]}, NUMBER),
        ({"type": "boolean"}, BOOLEAN),
        ({"type": "string", "enum": ["a", "b"]}, ENUM),
        ({"enum": [1, "x", None]}, ENUM),
        ({"type": "object"}, JSON),
        ({"type": "array"}, JSON),
        ({"type": ["array", "object", "null"]}, JSON),
        ({}, JSON_OR_TEXT),
        ({"anyOf": [{"type": "string"}, {"type": "array"}]}, JSON_OR_TEXT),
    ],
)
def test_each_schema_shape_has_its_kind_of_field(prop, kind):
    assert field_kind("x", prop) == kind


def test_long_text_keys_get_a_textarea():
    assert field_kind("body", {"type": "string"}) == TEXTAREA
    assert field_kind("code", {"type": "string"}) == TEXTAREA
    assert field_kind("url", {"type": "string"}) == TEXT


def test_a_config_value_held_by_a_template_stays_editable_as_text():
    prop = {"type": "boolean"}
    assert field_kind("flag", prop, initial="{{ input.flag }}") == JSON_OR_TEXT
    assert field_kind("flag", prop, initial="{{ input.flag }}", templates=False) == BOOLEAN
    step = registry.get("database_query")
    data = {"config": {"connection": "c", "query": "select 1", "read_only": "{{ input.ro }}"}}
    form = NodeForm(step, data)
    assert form.specs["config__read_only"].kind == JSON_OR_TEXT
    assert form["config__read_only"].value() == "{{ input.ro }}"
    bound = NodeForm(step, data, as_posted(form))
    assert bound.is_valid(), bound.errors
    assert bound.node_data_out["config"]["read_only"] == "{{ input.ro }}"


def test_numbers_take_numbers_or_templates_in_config_only():
    step = registry.get("delay")
    form = NodeForm(step, {}, post(config__seconds="{{ input.wait }}", backoff_base="1.5"))
    assert form.is_valid(), form.errors
    assert form.node_data_out == {"config": {"seconds": "{{ input.wait }}"}, "backoff_base": 1.5}

    form = NodeForm(step, {}, post(config__seconds="2.5", max_attempts="{{ input.n }}"))
    assert not form.is_valid()
    assert form.errors["max_attempts"] == ["Enter a whole number."]

    form = NodeForm(step, {}, post(config__seconds="-1"))
    assert not form.is_valid()
    assert "config__seconds" in form.errors  # the schema's minimum, from validation

    form = NodeForm(
        registry.get("inline_code"), {}, post(config__code="x", config__memory_mb="64.5")
    )
    assert form.errors["config__memory_mb"] == ["Enter a whole number."]


def test_json_fields_are_parsed_and_checked_against_the_schema():
    step = registry.get("http_request")
    form = NodeForm(step, {}, post(config__url="https://x.example", config__headers='{"A": "b"}'))
    assert form.is_valid(), form.errors
    assert form.node_data_out["config"]["headers"] == {"A": "b"}

    form = NodeForm(step, {}, post(config__url="https://x.example", config__headers='{"A": '))
    assert form.errors["config__headers"][0].startswith("Not valid JSON")

    form = NodeForm(step, {}, post(config__url="https://x.example", config__headers='{"A": []}'))
    assert "config__headers" in form.errors


def test_a_field_of_several_types_is_json_when_it_parses_to_one_else_text():
    step = registry.get("send_email")
    form = NodeForm(
        step, {}, post(config__to='["a@example.com", "b@example.com"]', config__subject="Hi")
    )
    assert form.is_valid(), form.errors
    assert form.node_data_out["config"]["to"] == ["a@example.com", "b@example.com"]

    form = NodeForm(step, {}, post(config__to="123", config__subject="Hi"))
    assert form.is_valid(), form.errors
    assert form.node_data_out["config"]["to"] == "123"  # a number is not allowed: text

    step = registry.get("http_request")
    blank = NodeForm(step, {})
    form = NodeForm(step, {}, as_posted(blank, config__url="u", config__body="plain {{ input.x }}"))
    assert form.is_valid(), form.errors
    assert form.node_data_out["config"]["body"] == "plain {{ input.x }}"
    form = NodeForm(
        step, {}, as_posted(blank, config__url="u", config__body='{"a": "{{ input.x }}"}')
    )
    assert form.is_valid(), form.errors
    assert form.node_data_out["config"]["body"] == {"a": "{{ input.x }}"}


def test_the_form_is_filled_from_the_node_data_and_the_schema_defaults():
    step = registry.get("http_request")
    data = {
        "label": "Get",
        "config": {"url": "https://x", "headers": {"A": "1"}},
        "max_attempts": 4,
    }
    form = NodeForm(step, data)
    assert form["config__url"].value() == "https://x"
    assert json.loads(form["config__headers"].value()) == {"A": "1"}
    assert form["config__method"].value() == '"GET"'  # the schema default
    assert form["config__follow_redirects"].value() is True
    assert form["max_attempts"].value() == "4"
    assert form["on_error"].value() == '"fail"'
    assert form["label"].value() == "Get"


def test_clearing_a_field_removes_its_key():
    step = registry.get("http_request")
    data = {"label": "Get", "config": {"url": "https://x", "method": "POST", "timeout_seconds": 5}}
    posted = as_posted(
        NodeForm(step, data), label="", config__method="", config__timeout_seconds=""
    )
    form = NodeForm(step, data, posted)
    assert form.is_valid(), form.errors
    assert form.node_data_out == {"config": {"url": "https://x"}}


def test_unchecking_a_box_stores_false():
    step = registry.get("http_request")
    data = {"config": {"url": "https://x"}}
    form = NodeForm(step, data, as_posted(NodeForm(step, data), config__follow_redirects=None))
    assert form.is_valid(), form.errors
    assert form.node_data_out == {"config": {"url": "https://x", "follow_redirects": False}}


def test_a_value_equal_to_the_default_stays_when_it_was_set_before():
    step = registry.get("http_request")
    data = {"config": {"url": "https://x", "method": "GET"}}
    form = NodeForm(step, data, as_posted(NodeForm(step, data)))
    assert form.is_valid(), form.errors
    assert form.node_data_out["config"] == {"url": "https://x", "method": "GET"}


def test_an_expression_field_is_checked_by_the_engine():
    step = registry.get("condition")
    form = NodeForm(step, {}, post(config__expression="input.a ==="))
    assert not form.is_valid()
    assert form.errors["config__expression"][0].startswith("Invalid expression")


def test_config_keys_outside_the_schema_are_dropped_and_announced():
    step = registry.get("delay")
    form = NodeForm(step, {"config": {"seconds": 1, "sekonds": 2}}, post(config__seconds="1"))
    assert form.unknown_config_keys == ["sekonds"]
    assert form.is_valid(), form.errors
    assert form.node_data_out == {"config": {"seconds": 1}}


def test_registry_backed_fields_offer_their_values():
    form = NodeForm(registry.get("function_call"), {})
    assert "text.slugify" in form.suggestions["config__function"]
    assert form.fields["config__function"].widget.attrs["list"] == "config__function-suggestions"
    offered = NodeForm(registry.get("for_each"), {}).suggestions["config__step_type"]
    assert "http_request" in offered and "wait_for_approval" not in offered


def test_expression_fields_are_marked_for_the_picker():
    form = NodeForm(registry.get("condition"), {})
    assert form.fields["config__expression"].widget.attrs["data-fm-expression"] == "true"
    form = NodeForm(registry.get("wait_for_event"), {})
    assert form.fields["config__match"].widget.attrs["data-fm-expression"] == "true"
    assert "data-fm-expression" not in form.fields["config__event_name"].widget.attrs
