"""The function registry, dotted-path loading, args validation, built-ins, function_call."""

import hashlib
import hmac

import pytest

from engine.errors import NonRetryableError, RegistryError
from engine.functions import functions, load_configured_functions, register_function
from engine.handlers import function_call

CONTEXT = {"input": {}, "run": {"id": "run-1", "step_id": "f", "idempotency_key": "run-1:f"}}


# Registered once, at import (the registry is global).
@register_function("tests.functions.dup")
async def _dup(args, context):
    return {}


@register_function
async def echo_for_tests(args, context):
    """Echo the args back.

    More text that is not part of the description."""
    return dict(args)


@register_function("tests.functions.returns_list", label="Returns a list")
async def _returns_list(args, context):
    return [1, 2]


@register_function(
    "tests.functions.nested",
    input_schema={
        "type": "object",
        "required": ["user"],
        "properties": {
            "user": {
                "type": "object",
                "required": ["age"],
                "properties": {"age": {"type": "integer", "minimum": 0}},
            },
            "tags": {"type": "array", "items": {"type": "string"}},
        },
    },
)
async def _nested(args, context):
    return {"ok": True}


# -- registration -----------------------------------------------------------------------------


def test_bare_decorator_uses_the_function_name_and_docstring():
    entry = functions.get("echo_for_tests")
    assert entry is not None
    assert entry.description == "Echo the args back."
    assert entry.label == "Echo for tests"
    assert entry.input_schema == {"type": "object"}
    assert functions.get("tests.functions.returns_list").label == "Returns a list"


def test_sync_function_is_refused():
    with pytest.raises(RegistryError, match="must be an async function"):

        @register_function("tests.functions.sync")
        def sync(args, context):
            return {}

    assert "tests.functions.sync" not in functions


def test_non_callable_is_refused():
    with pytest.raises(RegistryError, match="not callable"):
        register_function("tests.functions.nope")(42)


@pytest.mark.parametrize("params", ["args", "args, context, extra", ""])
def test_wrong_arity_is_refused(params):
    namespace = {}
    exec(f"async def f({params}):\n    return {{}}", namespace)
    with pytest.raises(RegistryError, match=r"must take \(args, context\)"):
        register_function(f"tests.functions.arity_{len(params)}")(namespace["f"])


def test_duplicate_name_is_refused():
    with pytest.raises(RegistryError, match="already registered"):

        @register_function("tests.functions.dup")
        async def again(args, context):
            return {}


@pytest.mark.parametrize(
    "name", ["", "1abc", "a..b", "a-b", "a.", ".a", "has space", "ok\n", "x" * 101, 7]
)
def test_bad_names_are_refused(name):
    async def f(args, context):
        return {}

    with pytest.raises(RegistryError, match="must be identifiers joined by dots"):
        register_function(name)(f)


@pytest.mark.parametrize(
    ("schema", "match"),
    [
        ({"type": "array"}, "input_schema must be an object schema"),
        ("nope", "input_schema must be an object schema"),
        ({"type": "object", "properties": {"x": {"type": "nope"}}}, "input_schema is invalid"),
    ],
)
def test_bad_input_schema_is_refused(schema, match):
    async def f(args, context):
        return {}

    with pytest.raises(RegistryError, match=match):
        register_function("tests.functions.bad_schema", input_schema=schema)(f)


# -- loading by dotted path -------------------------------------------------------------------


def test_load_configured_functions_imports_modules_and_callables(settings):
    settings.FLOWMATRX_FUNCTIONS = [
        "engine.tests.sample_functions",
        "engine.tests.sample_functions.sample_triple",
        "engine.tests.sample_functions.double",  # decorated already: not registered twice
    ]
    names = load_configured_functions()
    assert {"tests.sample.double", "sample_triple", "text.slugify"} <= set(names)
    assert functions.get("sample_triple").description == "Multiply by three."
    assert load_configured_functions() == names  # idempotent


@pytest.mark.parametrize(
    ("path", "match"),
    [
        ("engine.tests.no_such_module", "neither a module nor an attribute of 'engine.tests'"),
        ("engine.no_such_package.f", "No module named 'engine.no_such_package'"),
        ("no_such_top_level", "No module named 'no_such_top_level'"),
        ("engine.tests.sample_functions.missing", "neither a module nor an attribute"),
        ("engine.tests.sample_functions.sample_sync", "must be an async function"),
        ("", "must be a dotted path"),
    ],
)
def test_load_configured_functions_reports_bad_paths(settings, path, match):
    settings.FLOWMATRX_FUNCTIONS = [path]
    with pytest.raises(RegistryError, match=match):
        load_configured_functions()


# -- calling ----------------------------------------------------------------------------------


async def test_function_call_runs_the_function_with_args_and_context(settings):
    settings.FLOWMATRX_FUNCTIONS = ["engine.tests.sample_functions"]
    out = await function_call.execute(
        {"function": "tests.sample.double", "args": {"n": 21}}, CONTEXT
    )
    assert out == {"value": 42, "run_id": "run-1"}


async def test_function_call_loads_configured_functions_on_demand(settings):
    settings.FLOWMATRX_FUNCTIONS = ["engine.tests.sample_functions.sample_triple"]
    out = await function_call.execute({"function": "sample_triple", "args": {"n": 2}}, CONTEXT)
    assert out == {"value": 6}


async def test_function_call_without_args_passes_an_empty_object():
    out = await function_call.execute({"function": "echo_for_tests"}, CONTEXT)
    assert out == {}


async def test_unknown_function_lists_close_matches():
    with pytest.raises(
        NonRetryableError, match=r"unknown function 'text\.slugfy'.*'text\.slugify'"
    ):
        await function_call.execute({"function": "text.slugfy"}, CONTEXT)
    with pytest.raises(NonRetryableError, match=r"registered functions: .*crypto\.hash"):
        await function_call.execute({"function": "zzzzzzzzzzzz"}, CONTEXT)


async def test_function_call_reports_a_misconfigured_path(settings):
    settings.FLOWMATRX_FUNCTIONS = ["engine.tests.no_such_module"]
    with pytest.raises(NonRetryableError, match="cannot import function path"):
        await function_call.execute({"function": "nothing.here"}, CONTEXT)


async def test_non_dict_result_is_an_error():
    with pytest.raises(NonRetryableError, match="returned list, not an object"):
        await function_call.execute({"function": "tests.functions.returns_list"}, CONTEXT)


async def test_args_must_be_an_object():
    with pytest.raises(NonRetryableError, match="'args' must be an object, not list"):
        await function_call.execute({"function": "echo_for_tests", "args": [1]}, CONTEXT)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({}, r"args: 'user' is a required property"),
        ({"user": {}}, r"args\.user: 'age' is a required property"),
        ({"user": {"age": "old"}}, r"args\.user\.age: 'old' is not of type 'integer'"),
        ({"user": {"age": -1}}, r"args\.user\.age: -1 is less than the minimum of 0"),
        ({"user": {"age": 1}, "tags": ["a", 2]}, r"args\.tags\[1\]: 2 is not of type 'string'"),
    ],
)
async def test_args_are_checked_against_the_input_schema(args, message):
    with pytest.raises(NonRetryableError, match=r"function 'tests\.functions\.nested': " + message):
        await function_call.execute({"function": "tests.functions.nested", "args": args}, CONTEXT)


async def test_args_schema_refuses_unknown_keys():
    with pytest.raises(NonRetryableError, match="Additional properties are not allowed"):
        await function_call.execute(
            {"function": "text.slugify", "args": {"text": "a", "txet": "b"}}, CONTEXT
        )


# -- built-in functions -----------------------------------------------------------------------


async def call(name, **args):
    return await function_call.execute({"function": name, "args": args}, CONTEXT)


async def test_slugify():
    assert await call("text.slugify", text="  Héllo, Wörld! 2024 ") == {"slug": "hello-world-2024"}
    assert await call("text.slugify", text="A B", separator="_", lowercase=False) == {"slug": "A_B"}
    assert await call("text.slugify", text="one two three", max_length=7) == {"slug": "one-two"}
    assert await call("text.slugify", text="¡!") == {"slug": ""}


async def test_hash():
    sha = hashlib.sha256(b"abc").hexdigest()
    assert await call("crypto.hash", text="abc") == {"digest": sha, "algorithm": "sha256"}
    out = await call("crypto.hash", text="abc", algorithm="md5", encoding="base64")
    assert out == {"digest": "kAFQmDzST7DWlj99KOF/cg==", "algorithm": "md5"}
    mac = hmac.new(b"k", b"abc", "sha256").hexdigest()
    assert await call("crypto.hash", text="abc", key="k") == {
        "digest": mac,
        "algorithm": "hmac-sha256",
    }
    with pytest.raises(NonRetryableError, match=r"args\.algorithm: 'crc32' is not one of"):
        await call("crypto.hash", text="abc", algorithm="crc32")


async def test_pick():
    data = {"user": {"name": "Ada", "emails": ["a@x.org", "b@x.org"]}, "n": 0}
    out = await call(
        "data.pick",
        data=data,
        paths={"name": "user.name", "first": "user.emails.0", "last": "user.emails.-1"}
        | {"zero": "n", "none": "user.phone", "far": "user.emails.9", "all": ""},
        default="?",
    )
    assert out == {
        "name": "Ada",
        "first": "a@x.org",
        "last": "b@x.org",
        "zero": 0,
        "none": "?",
        "far": "?",
        "all": data,
    }
    assert await call("data.pick", data=[1], paths={"x": "0.a"}) == {"x": None}
