"""Functions every installation has: small, pure helpers for `function_call` steps."""

import base64
import hashlib
import hmac
import re
import unicodedata
from collections.abc import Mapping

from engine.errors import StepError
from engine.functions import register_function

_NOT_SLUG = re.compile(r"[^A-Za-z0-9]+")


@register_function(
    "text.slugify",
    label="Slugify",
    description="Turn text into a URL-safe slug: 'Héllo, World!' gives 'hello-world'.",
    input_schema={
        "type": "object",
        "required": ["text"],
        "properties": {
            "text": {"type": "string", "description": "The text to turn into a slug."},
            "separator": {"type": "string", "maxLength": 5, "default": "-"},
            "lowercase": {"type": "boolean", "default": True},
            "max_length": {"type": "integer", "minimum": 1, "description": "Cut to this."},
        },
        "additionalProperties": False,
    },
    output_schema={"type": "object", "properties": {"slug": {"type": "string"}}},
)
async def slugify(args, context):
    separator = args.get("separator", "-")
    text = unicodedata.normalize("NFKD", args["text"]).encode("ascii", "ignore").decode()
    slug = separator.join(word for word in _NOT_SLUG.split(text) if word)
    if args.get("lowercase", True):
        slug = slug.lower()
    if args.get("max_length"):
        slug = slug[: args["max_length"]]
        slug = slug.rstrip(separator) if separator else slug
    return {"slug": slug}


@register_function(
    "crypto.hash",
    label="Hash",
    description="Hash text with SHA-256 (or SHA-512, SHA-1, MD5); with a key, an HMAC.",
    input_schema={
        "type": "object",
        "required": ["text"],
        "properties": {
            "text": {"type": "string", "description": "Hashed as UTF-8."},
            "algorithm": {"enum": ["sha256", "sha512", "sha1", "md5"], "default": "sha256"},
            "encoding": {"enum": ["hex", "base64"], "default": "hex"},
            "key": {"type": "string", "description": "Secret for an HMAC instead of a hash."},
        },
        "additionalProperties": False,
    },
    output_schema={
        "type": "object",
        "properties": {"digest": {"type": "string"}, "algorithm": {"type": "string"}},
    },
)
async def hash_text(args, context):
    algorithm = args.get("algorithm", "sha256")
    data = args["text"].encode()
    if "key" in args:
        digest = hmac.new(args["key"].encode(), data, algorithm).digest()
    else:
        digest = hashlib.new(algorithm, data).digest()
    if args.get("encoding", "hex") == "base64":
        text = base64.b64encode(digest).decode()
    else:
        text = digest.hex()
    return {"digest": text, "algorithm": f"hmac-{algorithm}" if "key" in args else algorithm}


_MISSING = object()


def _lookup(data, path: str):
    for part in path.split(".") if path else ():
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and part.lstrip("-").isdigit() and -len(data) <= int(part):
            if int(part) >= len(data):
                return _MISSING
            data = data[int(part)]
        else:
            return _MISSING
    return data


@register_function(
    "data.pick",
    label="Pick values",
    description="Pick values out of nested data by dotted paths ('user.emails.0').",
    input_schema={
        "type": "object",
        "required": ["data", "paths"],
        "properties": {
            "data": {"description": "The object or list to read, e.g. {{ fetch.body }}."},
            "paths": {
                "type": "object",
                "description": "Output key → dotted path; list items by index.",
                "additionalProperties": {"type": "string"},
            },
            "default": {"description": "The value of a path that does not exist (null)."},
        },
        "additionalProperties": False,
    },
    output_schema={"type": "object", "description": "One key per entry of `paths`."},
)
async def pick(args, context):
    default = args.get("default")
    out = {}
    for key, path in args["paths"].items():
        value = _lookup(args["data"], path)
        out[key] = default if value is _MISSING else value
    return out


@register_function(
    "demo.flaky",
    label="Flaky (demo)",
    description="Fails (retryably) on the first `failures` attempts of its step, then returns "
    "`value`: shows retries without an unreliable outside service.",
    input_schema={
        "type": "object",
        "properties": {
            "value": {"description": "Returned as {'value': ...} once it succeeds."},
            "failures": {"type": "integer", "minimum": 0, "maximum": 10, "default": 1},
        },
        "additionalProperties": False,
    },
    output_schema={"type": "object", "properties": {"value": {}, "attempt": {"type": "integer"}}},
)
async def flaky(args, context):
    run = context.get("run") if isinstance(context, Mapping) else None
    attempt = run.get("attempt", 1) if isinstance(run, Mapping) else 1
    if attempt <= args.get("failures", 1):
        raise StepError(f"demo.flaky: attempt {attempt} fails on purpose")
    return {"value": args.get("value"), "attempt": attempt}
