"""The Run button's input form, generated from the workflow's `input_schema`.

A flat object schema whose properties are strings, numbers, integers, booleans or enums
becomes one field per property (required and defaults from the schema). Anything else
(nested objects, arrays, combinators, a non-object schema) or no schema at all becomes one
raw JSON textarea. Either way the assembled input is validated against the schema with
jsonschema, and each error is shown next to the field it is about.
"""

import json

from django import forms
from jsonschema import SchemaError
from jsonschema.validators import validator_for

FIELD_TYPES = ("string", "number", "integer", "boolean")
RAW = "json"


def _is_scalar(value) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _mappable(prop) -> bool:
    if not isinstance(prop, dict):
        return False
    if "enum" in prop:
        return (
            isinstance(prop["enum"], list)
            and bool(prop["enum"])
            and all(_is_scalar(v) for v in prop["enum"])
        )
    return prop.get("type") in FIELD_TYPES


def field_properties(schema) -> dict[str, dict] | None:
    """The schema's properties when every one maps to a form field, else None."""
    if not isinstance(schema, dict) or schema.get("type", "object") != "object":
        return None
    if any(key in schema for key in ("anyOf", "oneOf", "allOf", "not", "if", "$ref")):
        return None
    properties = schema.get("properties")
    if not isinstance(properties, dict) or not properties:
        return None
    if not all(isinstance(name, str) and _mappable(p) for name, p in properties.items()):
        return None
    return properties


def _enum_field(prop, required: bool) -> forms.Field:
    # Choices carry each value as JSON so 1, "1" and true stay distinct.
    choices = [(json.dumps(v), str(v)) for v in prop["enum"]]
    if not required:
        choices.insert(0, ("", "—"))
    initial = json.dumps(prop["default"]) if "default" in prop else None
    return forms.TypedChoiceField(
        choices=choices, coerce=json.loads, required=required, initial=initial, empty_value=None
    )


def _field(prop: dict, required: bool) -> forms.Field:
    options = {
        "required": required,
        "initial": prop.get("default"),
        "help_text": prop.get("description", ""),
    }
    if "enum" in prop:
        field = _enum_field(prop, required)
    elif prop["type"] == "boolean":
        # Unchecked is `false`, a value, so a boolean is never "missing".
        field = forms.BooleanField(**{**options, "required": False})
    elif prop["type"] == "integer":
        field = forms.IntegerField(**options)
    elif prop["type"] == "number":
        field = forms.FloatField(**options)
    else:
        field = forms.CharField(**options, strip=False)
    if "enum" in prop:
        field.help_text = options["help_text"]
    return field


class RunForm(forms.Form):
    """`RunForm(workflow.input_schema, request.POST)`; after `is_valid()`, `input` is the
    run's input."""

    def __init__(self, schema, *args, **kwargs):
        kwargs.setdefault("prefix", "input")
        super().__init__(*args, **kwargs)
        self.schema = schema
        self.input: dict = {}
        properties = field_properties(schema)
        self.raw = properties is None
        if self.raw:
            self.fields[RAW] = forms.CharField(
                label="Input (JSON object)",
                required=False,
                initial="{}",
                widget=forms.Textarea(attrs={"rows": 6, "class": "json"}),
            )
            return
        required = set(schema.get("required") or [])
        for name, prop in properties.items():
            self.fields[name] = _field(prop, name in required)
            self.fields[name].label = prop.get("title") or name

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        if self.raw:
            text = (cleaned.get(RAW) or "").strip() or "{}"
            try:
                value = json.loads(text)
            except ValueError as error:
                self.add_error(RAW, f"Not valid JSON: {error}")
                return cleaned
            if not isinstance(value, dict):
                self.add_error(RAW, "The input must be a JSON object.")
                return cleaned
        else:
            value = {
                name: cleaned[name]
                for name in self.fields
                if cleaned.get(name) is not None
                and not (cleaned[name] == "" and not self.fields[name].required)
            }
        self._validate(value)
        self.input = value
        return cleaned

    def _validate(self, value: dict) -> None:
        if not isinstance(self.schema, dict):
            return
        try:
            cls = validator_for(self.schema)
            cls.check_schema(self.schema)
        except SchemaError as error:
            self.add_error(None, f"The workflow's input schema is invalid: {error.message}")
            return
        for error in sorted(cls(self.schema).iter_errors(value), key=lambda e: list(e.path)):
            field = error.path[0] if error.path else None
            if self.raw or field not in self.fields:
                where = "/".join(str(p) for p in error.path)
                field = RAW if self.raw else None
                message = f"{where}: {error.message}" if where else error.message
            else:
                message = error.message
            if error.validator == "required" and not self.raw:
                missing = error.message.split("'")[1] if "'" in error.message else None
                if missing in self.fields:
                    field, message = missing, "This field is required."
            self.add_error(field, message)
