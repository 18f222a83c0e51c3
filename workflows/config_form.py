"""The builder's node configuration form, generated from a step type's config JSON Schema.

`NodeForm(step_type, node_data, data=request.POST)` has one field per property of the
type's config schema (named ``config__<key>``) plus the fields every node has (SPEC §2:
label, on_error, max_attempts, backoff_strategy, backoff_base, timeout_seconds, join;
their schemas are the catalog's `NODE_FIELDS`). A property becomes:

* a string: a text input, or a textarea when the schema hints several lines
  (``"format": "multiline"``) or the key holds long text (body, code, prompt, ...);
* an integer or a number: a text input that takes a number or, in config, a template
  (``{{ input.wait }}`` may stand for a number until run time);
* a boolean: a checkbox; an enum: a select;
* an object or an array: a JSON textarea; a property of no single type (``body``,
  ``items``, a string-or-list ``to``): a textarea read as JSON when it parses as an
  allowed type, else kept as text;
* a ``writeOnly`` string (a signing secret): a password input that is never filled in;
  left blank, the stored secret stays.

Parsing gives the node's new `data`: the old data with the form's keys replaced. A blank
optional field is left out, and so is a value equal to the schema's default that was not
set before, so configs stay minimal. The result is then checked by the engine's own
validation (`engine.validation.validate_definition`, see `node_problems`): schema,
policy, template-syntax and expression problems become errors on their fields;
references to steps that are not upstream are only warnings (the node may be connected
later; the canvas's validation reports them too).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from django import forms

from engine.catalog import NODE_FIELDS
from engine.functions import functions, load_configured_functions
from engine.graph import Graph
from engine.registry import StepType, registry
from engine.templates import is_template
from engine.validation import EXPRESSION_FIELDS, validate_definition

CONFIG_PREFIX = "config__"
COMMON_KEYS = tuple(NODE_FIELDS)
"""label, on_error, max_attempts, backoff_strategy, backoff_base, timeout_seconds, join."""

MULTILINE_KEYS = frozenset(
    {"body", "code", "html", "prompt", "system", "query", "template", "text", "content"}
)
"""String config keys that usually hold several lines (templates, code, SQL)."""

WARNING_CODES = frozenset({"bad_reference"})
"""Validation problems shown beside the field without refusing the form."""


def _function_names() -> list[str]:
    load_configured_functions()
    return functions.names()


def _per_item_step_types() -> list[str]:
    return [t.name for t in registry.all() if t.resume is None and t.wake is None]


SUGGESTIONS: dict[tuple[str, str], Callable[[], list[str]]] = {
    ("function_call", "function"): _function_names,
    ("for_each", "step_type"): _per_item_step_types,
}
"""Text config fields whose valid values live in a registry, not in the schema: the form
offers them (a datalist), validation still has the last word."""


def is_expression(type_name: str, key: str) -> bool:
    """True for a config key that holds a safe expression (``fetch.status_code == 200``),
    not a template: the engine's validation knows which those are."""
    field = EXPRESSION_FIELDS.get(type_name)
    return field is not None and field[0] == key


TEXT, TEXTAREA, INTEGER, NUMBER, BOOLEAN, ENUM, JSON, JSON_OR_TEXT, SECRET = (
    "text",
    "textarea",
    "integer",
    "number",
    "boolean",
    "enum",
    "json",
    "json_or_text",
    "secret",
)
_JSON_TYPES = {
    "object": dict,
    "array": list,
    "number": (int, float),
    "integer": int,
    "boolean": bool,
    "null": type(None),
}


def schema_types(prop: Mapping) -> frozenset[str]:
    """The JSON types a property allows (``"type"``, or the types of its anyOf/oneOf
    branches); empty when it allows anything."""
    found: set[str] = set()
    kind = prop.get("type")
    if isinstance(kind, str):
        found.add(kind)
    elif isinstance(kind, list):
        found.update(k for k in kind if isinstance(k, str))
    for combinator in ("anyOf", "oneOf"):
        for branch in prop.get(combinator) or ():
            if not isinstance(branch, Mapping):
                continue
            branch_types = schema_types(branch)
            if not branch_types:
                return frozenset()
            found |= branch_types
    return frozenset(found)


def _scalar_enum(prop: Mapping) -> bool:
    values = prop.get("enum")
    return (
        isinstance(values, list)
        and bool(values)
        and all(v is None or isinstance(v, str | int | float | bool) for v in values)
    )


def field_kind(key: str, prop: Mapping, *, initial: Any = None, templates: bool = True) -> str:
    """How property `key` is edited. A config value that is currently a template string
    (``"{{ input.flag }}"`` for a boolean) is edited as text so it is not lost."""
    kind = _base_kind(key, prop)
    held = isinstance(initial, str) and is_template(initial)
    if templates and held and kind in (BOOLEAN, ENUM, JSON):
        return JSON_OR_TEXT
    return kind


def _base_kind(key: str, prop: Mapping) -> str:
    types = schema_types(prop) - {"null"}
    if _scalar_enum(prop):
        return ENUM
    if types == {"string"}:
        if prop.get("writeOnly"):
            return SECRET
        multiline = prop.get("format") == "multiline" or prop.get("x-multiline") is True
        return TEXTAREA if multiline or key in MULTILINE_KEYS else TEXT
    if types == {"integer"}:
        return INTEGER
    if types and types <= {"integer", "number"}:
        return NUMBER
    if types == {"boolean"}:
        return BOOLEAN
    if types and "string" not in types:
        return JSON
    return JSON_OR_TEXT


@dataclass(frozen=True)
class FieldSpec:
    """One form field: where its value goes in the node's data, and how it is edited."""

    key: str
    """The key in `data` (a common field) or in `data["config"]`."""
    in_config: bool
    kind: str
    prop: Mapping
    required: bool

    @property
    def name(self) -> str:
        return CONFIG_PREFIX + self.key if self.in_config else self.key

    @property
    def clear_name(self) -> str:
        """The "remove the stored secret" checkbox of a secret field."""
        return self.name + "__clear"


def _text_of(value: Any, kind: str) -> Any:
    """A stored value as the form shows it."""
    if value is None:
        return None
    if kind in (JSON, JSON_OR_TEXT):
        if isinstance(value, str) and kind == JSON_OR_TEXT:
            return value
        return json.dumps(value, indent=2, ensure_ascii=False)
    if kind == ENUM:
        return json.dumps(value)
    if kind in (INTEGER, NUMBER):
        return value if isinstance(value, str) else json.dumps(value)
    return value


def _django_field(spec: FieldSpec, initial: Any) -> forms.Field:
    prop = spec.prop
    options = {
        "label": prop.get("title") or spec.key.replace("_", " ").capitalize(),
        "help_text": prop.get("description", ""),
        "required": spec.required,
        "initial": initial,
    }
    kind = spec.kind
    if kind == BOOLEAN:
        # unchecked is `false`, a value: a boolean is never missing
        return forms.BooleanField(**{**options, "required": False})
    if kind == ENUM:
        choices = [(json.dumps(v), str(v)) for v in prop["enum"]]
        if not spec.required:
            choices.insert(0, ("", "—"))
        return forms.ChoiceField(choices=choices, **options)
    if kind == SECRET:
        widget = forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"})
        return forms.CharField(
            **{**options, "required": False, "initial": None}, strip=False, widget=widget
        )
    attrs = {"data-fm-field": kind, "spellcheck": "false"}
    if kind in (INTEGER, NUMBER):
        attrs["inputmode"] = "numeric" if kind == INTEGER else "decimal"
        widget = forms.TextInput(attrs=attrs)
    elif kind == TEXT:
        widget = forms.TextInput(attrs=attrs)
    else:
        rows = 8 if spec.key == "code" else 4
        attrs["class"] = "json" if kind == JSON else "template"
        widget = forms.Textarea(attrs={**attrs, "rows": rows})
    return forms.CharField(**options, strip=False, widget=widget)


_NO_DEFAULT = object()


def _same(value: Any, default: Any) -> bool:
    """Equal as JSON (True is not 1)."""
    if default is _NO_DEFAULT:
        return False
    return json.dumps(value, sort_keys=True) == json.dumps(default, sort_keys=True)


class NodeForm(forms.Form):
    """The config form of one node.

    `node_data` is the node's current `data` (it fills the form and is the base the
    posted values replace). After `is_valid()`, `node_data_out` is the node's new data.
    `graph` (of the canvas definition) and `node_id` let validation judge references;
    `warnings` maps field names (None: the node) to messages that do not refuse the form.
    """

    def __init__(
        self,
        step_type: StepType,
        node_data: Mapping | None = None,
        *args,
        node_id: str = "node",
        graph: Graph | None = None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.step_type = step_type
        self.node_id = node_id
        self.graph = graph
        self.original = dict(node_data or {})
        config = self.original.get("config")
        self.original_config = dict(config) if isinstance(config, Mapping) else {}
        self.node_data_out: dict = {}
        self.warnings: dict[str | None, list[str]] = {}
        self.specs: dict[str, FieldSpec] = {}
        self.suggestions: dict[str, list[str]] = {}

        schema = step_type.config_schema
        properties = schema.get("properties") or {}
        required = set(schema.get("required") or ())
        for key, prop in properties.items():
            if isinstance(prop, Mapping):
                self._add(key, prop, in_config=True, required=key in required)
        for key in COMMON_KEYS:
            self._add(key, NODE_FIELDS[key], in_config=False, required=False)
        self.unknown_config_keys = [k for k in self.original_config if k not in properties]

    def _add(self, key: str, prop: Mapping, *, in_config: bool, required: bool) -> None:
        source = self.original_config if in_config else self.original
        present = key in source
        stored = source.get(key)
        kind = field_kind(key, prop, initial=stored, templates=in_config)
        spec = FieldSpec(key, in_config, kind, prop, required)
        value = stored if present else prop.get("default")
        self.specs[spec.name] = spec
        field = self.fields[spec.name] = _django_field(spec, _text_of(value, kind))
        if in_config and is_expression(self.step_type.name, key):
            field.widget.attrs["data-fm-expression"] = "true"
        suggest = SUGGESTIONS.get((self.step_type.name, key)) if in_config else None
        if suggest is not None and kind == TEXT:
            self.suggestions[spec.name] = suggest()
            field.widget.attrs["list"] = f"{spec.name}-suggestions"
        if kind == SECRET and stored:
            self.fields[spec.clear_name] = forms.BooleanField(
                required=False, label="Remove the stored secret"
            )

    # -- layout, for the template

    def rows(self, *, in_config: bool) -> list[dict]:
        """[{"field": bound field, "spec", "clear": bound field or None, "secret_set",
        "warnings", "suggestions"}] for the config part or the common part."""
        out = []
        for name, spec in self.specs.items():
            if spec.in_config != in_config:
                continue
            stored = (self.original_config if in_config else self.original).get(spec.key)
            out.append(
                {
                    "field": self[name],
                    "spec": spec,
                    "clear": self[spec.clear_name] if spec.clear_name in self.fields else None,
                    "secret_set": spec.kind == SECRET and bool(stored),
                    "warnings": self.warnings.get(name, []),
                    "suggestions": self.suggestions.get(name, []),
                }
            )
        return out

    @property
    def node_warnings(self) -> list[str]:
        """Warnings about the node that no field is responsible for."""
        return self.warnings.get(None, [])

    def config_rows(self) -> list[dict]:
        return self.rows(in_config=True)

    def common_rows(self) -> list[dict]:
        return self.rows(in_config=False)

    # -- parsing

    def clean(self):
        cleaned = super().clean()
        config: dict[str, Any] = {}
        data = {k: v for k, v in self.original.items() if k not in COMMON_KEYS}
        for name, spec in self.specs.items():
            if name in self.errors:
                continue
            source = self.original_config if spec.in_config else self.original
            try:
                present, value = self._value(spec, cleaned.get(name), source)
            except forms.ValidationError as error:
                self.add_error(name, error)
                continue
            if not present:
                continue
            default = spec.prop.get("default", _NO_DEFAULT)
            if spec.key not in source and _same(value, default):
                continue  # the default, not set before: keep the config minimal
            (config if spec.in_config else data)[spec.key] = value
        data["config"] = config
        self._check(data)
        self.node_data_out = data
        return cleaned

    def _value(self, spec: FieldSpec, raw: Any, source: Mapping) -> tuple[bool, Any]:
        """(present, value) of one field; absent means "leave the key out"."""
        kind = spec.kind
        if kind == BOOLEAN:
            return True, bool(raw)
        if kind == SECRET:
            if self.cleaned_data.get(spec.clear_name):
                return False, None
            if raw:
                return True, raw
            if spec.key in source:
                return True, source[spec.key]
            if spec.required:
                raise forms.ValidationError("This field is required.", code="required")
            return False, None
        if raw is None or raw == "":
            return False, None
        if kind == ENUM:
            return True, json.loads(raw)
        if kind in (INTEGER, NUMBER):
            if spec.in_config and is_template(raw):
                return True, raw
            return True, _number(raw.strip(), integer=kind == INTEGER, templates=spec.in_config)
        if kind == JSON:
            try:
                return True, json.loads(raw)
            except ValueError as error:
                raise forms.ValidationError(f"Not valid JSON: {error}", code="json") from None
        if kind == JSON_OR_TEXT:
            return True, _json_or_text(raw, schema_types(spec.prop))
        return True, raw

    def _check(self, data: dict) -> None:
        """The engine's validation of the node with its new data."""
        for loc, message, code in self._problems(data):
            name = self._field_for(loc)
            if name is not None and name in self.errors:
                continue  # already refused by its own parsing
            if code in WARNING_CODES:
                self.warnings.setdefault(name, []).append(message)
            else:
                self.add_error(name, message)

    def check_stored(self) -> None:
        """For an unbound form: the stored data's problems as warnings beside the fields
        (a missing required value is already marked as required)."""
        data = {**self.original, "config": self.original_config}
        for loc, message, code in self._problems(data):
            if code != "missing_config":
                self.warnings.setdefault(self._field_for(loc), []).append(message)

    def _problems(self, data: dict) -> list[tuple[tuple[str, ...], str, str]]:
        return node_problems(self.step_type.name, data, node_id=self.node_id, graph=self.graph)

    def _field_for(self, loc: tuple[str, ...]) -> str | None:
        """The form field a validation location (inside the node's data) is about."""
        if len(loc) >= 2 and loc[0] == "config" and CONFIG_PREFIX + loc[1] in self.fields:
            return CONFIG_PREFIX + loc[1]
        if len(loc) >= 1 and loc[0] in COMMON_KEYS and loc[0] in self.fields:
            return loc[0]
        return None


def _number(text: str, *, integer: bool, templates: bool) -> int | float:
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        message = "Enter a whole number" if integer else "Enter a number"
        if templates:
            message += " or a template like {{ input.count }}"
        raise forms.ValidationError(message + ".", code="number")
    if integer:
        if isinstance(value, float) and not value.is_integer():
            raise forms.ValidationError("Enter a whole number.", code="number")
        return int(value)
    return value


def _json_or_text(raw: str, types: frozenset[str]) -> Any:
    """JSON when the text parses to an allowed type other than a string, else the text."""
    text = raw.strip()
    try:
        value = json.loads(text)
    except ValueError:
        return raw
    if not types:
        return value
    allowed = tuple(_JSON_TYPES[t] for t in types if t in _JSON_TYPES)
    if isinstance(value, bool) and "boolean" not in types:
        return raw
    if allowed and isinstance(value, allowed):
        return value
    return raw


def node_problems(
    type_name: str,
    data: Mapping,
    *,
    node_id: str,
    graph: Graph | None = None,
) -> list[tuple[tuple[str, ...], str, str]]:
    """(location inside the node's data, message, code) for every problem the engine's
    validation finds in the node's `data`.

    The node is validated alone with, for every other step of `graph` that its data
    names, a bare node and, when that step is upstream of it, an edge from it: reference
    problems then read as they would in the whole definition ("not upstream", "no such
    step"), at a cost that does not grow with the size of the workflow.
    """
    nodes: list[dict] = []
    edges: list[dict] = []
    if graph is not None and node_id in graph:
        text = json.dumps(data, ensure_ascii=False, default=str)
        upstream = graph.upstream(node_id)
        for other in graph.node_ids:
            if other == node_id or other not in text:
                continue
            nodes.append({"id": other})
            if other in upstream:
                edges.append({"id": f"{other}->{node_id}", "source": other, "target": node_id})
    nodes.append({"id": node_id, "type": type_name, "data": dict(data)})
    here = ("nodes", node_id, "data")
    return [
        (problem.loc[3:], problem.msg, problem.code)
        for problem in validate_definition({"nodes": nodes, "edges": edges})
        if problem.node_id == node_id and problem.loc[:3] == here
    ]
