"""Step-config templates: ``{{ step_id.field }}`` rendered with a sandboxed Jinja2.

This is the only way a step reads upstream data (SPEC §3), and it is on the engine's hot
path, so compiled templates are cached by source string.

Rules (SPEC §3, §6):

* :func:`render` walks dicts and lists (values only, never keys) and renders every string
  that contains ``{{`` or ``{%``. Values coming out of the context are never rendered
  again: a step output containing ``{{ secret }}`` stays that literal text.
* A string that is exactly one ``{{ expr }}`` (surrounding whitespace allowed) keeps the
  value's type (a list stays a list). Anything else renders as text, where objects and
  lists are written as JSON, ``None`` as ``""`` and booleans as ``true``/``false``.
* ``a.b`` and ``a['b']`` read the *key* of a dict, ``a.0``/``a[0]`` index a list. Python
  attributes of data are never exposed (``{{ s.upper() }}`` fails; ``{{ s|upper }}``
  works). A missing key fails with :class:`TemplateError` naming the full path.
* Work is bounded: big powers, repetitions and concatenations, big ranges, too many loop
  iterations, output over 1 MB and sources over 64 KB are refused. Blocks that buffer
  output out of sight (macros, call/filter blocks, ``{% set %}...{% endset %}``, recursive
  loops) and template loading (include/import/extends) are not available.
"""

from __future__ import annotations

import json
import math
import re
import types
from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame, optimizeconst
from jinja2.environment import Template
from jinja2.filters import (
    do_batch,
    do_format,
    do_indent,
    do_wordwrap,
    make_attrgetter,
    sync_do_slice,
)
from jinja2.runtime import Context, StrictUndefined, Undefined, missing
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import pass_environment, pass_eval_context

__all__ = [
    "MAX_LOOP_ITERATIONS",
    "MAX_OUTPUT_CHARS",
    "MAX_RANGE",
    "MAX_REPEAT",
    "MAX_SOURCE_BYTES",
    "TemplateError",
    "check_syntax",
    "is_template",
    "reference_roots",
    "references",
    "render",
]

MAX_SOURCE_BYTES = 64 * 1024
"""Template strings longer than this (UTF-8 bytes) are refused."""
MAX_OUTPUT_CHARS = 1_000_000
"""Rendered text, and any string built by ``~``, ``+`` or a filter, is at most this long."""
MAX_REPEAT = 100_000
"""``'ab' * n`` and ``[x] * n`` may produce at most this many characters/items."""
MAX_COLLECTION = 1_000_000
"""``list + list`` may produce at most this many items."""
MAX_RANGE = 10_000
"""``range()`` may produce at most this many items."""
MAX_LOOP_ITERATIONS = 100_000
"""Total ``{% for %}`` iterations in one render, across all loops."""
MAX_INT_BITS = 10_000
"""Integers computed by ``**`` and ``*`` are at most this many bits (~3000 digits)."""
MAX_FORMAT_WIDTH = 1_000
"""Largest width/precision in a ``%`` format spec (``"%5d" % x``, ``|format``)."""
MAX_JSON_INDENT = 16

_CACHE_SIZE = 2048
_RESULT = "_fm_result"

_JSON_NAMES: dict[type, str] = {
    dict: "object",
    list: "list",
    tuple: "list",
    str: "string",
    bool: "boolean",
    int: "number",
    float: "number",
    type(None): "null",
}


class TemplateError(ValueError):
    """A template could not be rendered.

    ``path`` is the dotted reference that failed when known (e.g. ``"fetch.body.items.3"``),
    else ``None``.
    """

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = path


def is_template(s: str) -> bool:
    """True when ``s`` contains a template tag (``{{`` or ``{%``)."""
    return "{{" in s or "{%" in s


# --------------------------------------------------------------------------- helpers


def _kind(value: Any) -> str:
    return _JSON_NAMES.get(type(value)) or type(value).__name__


def _a(value: Any) -> str:
    """``_kind`` with an article, for messages: "a string", "an object", "null"."""
    kind = _kind(value)
    if kind == "null":
        return kind
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


def _is_data(value: Any) -> bool:
    """JSON-ish values whose Python attributes must never be reachable."""
    return isinstance(value, (str, int, float, list, dict, types.NoneType)) or (
        type(value) is tuple
    )


def _join_path(prefix: str | None, key: Any) -> str | None:
    if prefix is None:
        return None
    if isinstance(key, (str, int)) and not isinstance(key, bool):
        return f"{prefix}.{key}"
    return f"{prefix}[{key!r}]"


def _to_text(value: Any) -> Any:
    """How a value is written into text: JSON-like for objects, lists, booleans, None."""
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (dict, list)) or type(value) is tuple:
        return _json_text(value)
    return value


_JSON = json.JSONEncoder(ensure_ascii=False, default=str)
_SMALL_JSON = MAX_OUTPUT_CHARS // 8


def _json_text(value: Any, indent: int | None = None) -> str:
    """``json.dumps`` that stops as soon as the text gets longer than the output limit."""
    if indent is None and _weight(value, _SMALL_JSON) <= _SMALL_JSON:
        # small enough that even worst-case escaping stays under the limit: the fast path
        return _JSON.encode(value)
    encoder = (
        _JSON
        if indent is None
        else json.JSONEncoder(ensure_ascii=False, default=str, indent=indent)
    )
    parts = []
    size = 0
    for chunk in encoder.iterencode(value):
        size += len(chunk)
        if size > MAX_OUTPUT_CHARS:
            raise TemplateError(f"JSON text would be too large (more than {MAX_OUTPUT_CHARS:,})")
        parts.append(chunk)
    return "".join(parts)


def _weight(value: Any, budget: int) -> int:
    """Rough size of a value (characters of strings, digits of numbers, one per item),
    counted until past ``budget``: repeating or printing a list of big strings must not
    slip under the item limits."""
    total = 0
    stack = [value]
    while stack and total <= budget:
        item = stack.pop()
        kind = type(item)
        if kind is str:
            total += len(item)
        elif kind is dict or (kind is not list and isinstance(item, Mapping)):
            total += 1 + 2 * len(item)
            if total <= budget:
                stack.extend(item.keys())
                stack.extend(item.values())
        elif kind is list or kind is tuple:
            total += 1 + len(item)
            if total <= budget:
                stack.extend(item)
        elif kind is int:
            total += 2 + item.bit_length() // 3  # about the number of digits
        elif isinstance(item, str):
            total += len(item)
        elif isinstance(item, (list, tuple)):
            total += 1 + len(item)
            if total <= budget:
                stack.extend(item)
        else:
            total += 24
    return total


def _short(number: Any) -> str:
    text = str(number)
    return text if len(text) <= 20 else f"<{len(text)}-digit number>"


def _check_length(size: int, what: str, limit: int = MAX_OUTPUT_CHARS) -> None:
    if size > limit:
        raise TemplateError(f"{what} would be too large ({size:,} > {limit:,})")


_PRINTF_SPEC = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?")


def _check_printf(fmt: str) -> None:
    for width, precision in _PRINTF_SPEC.findall(fmt):
        for part in (width, precision):
            if part == "*" or (part and int(part) > MAX_FORMAT_WIDTH):
                raise TemplateError(
                    f"format width/precision {part!r} is not allowed (at most {MAX_FORMAT_WIDTH})"
                )


# ------------------------------------------------------------------ bounded operators


def _pow(left: Any, right: Any) -> Any:
    if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
        bits = int(math.log2(abs(left)) * right) + 1
        if bits > MAX_INT_BITS:
            raise TemplateError(
                f"{_short(left)} ** {_short(right)} would be too large (about {bits:,} bits, "
                f"at most {MAX_INT_BITS:,})"
            )
    result = left**right
    if isinstance(result, complex):
        raise TemplateError(f"{_short(left)} ** {_short(right)} is not a real number")
    return result


def _mul(left: Any, right: Any) -> Any:
    if isinstance(left, int) and isinstance(right, int):
        if left.bit_length() + right.bit_length() > MAX_INT_BITS + 1:
            raise TemplateError(f"multiplication result would be too large (> {MAX_INT_BITS} bits)")
    else:
        for seq, count in ((left, right), (right, left)):
            if isinstance(seq, (str, list, tuple)) and isinstance(count, int) and count > 0:
                _check_length(len(seq) * count, "repetition result", MAX_REPEAT)
                if not isinstance(seq, str):
                    weight = _weight(seq, MAX_OUTPUT_CHARS // count + 1)
                    _check_length(weight * count, "repetition result")
    return left * right


def _add(left: Any, right: Any) -> Any:
    if isinstance(left, str) and isinstance(right, str):
        _check_length(len(left) + len(right), "string")
    elif isinstance(left, (list, tuple)) and isinstance(right, (list, tuple)):
        _check_length(len(left) + len(right), "list", MAX_COLLECTION)
    return left + right


def _mod(left: Any, right: Any) -> Any:
    if isinstance(left, str):
        _check_printf(left)
        result = left % right
        _check_length(len(result), "formatted string")
        return result
    return left % right


def _safe_range(*args: int) -> range:
    rng = range(*args)
    if len(rng) > MAX_RANGE:
        raise TemplateError(f"range() too big: {len(rng):,} items (at most {MAX_RANGE:,})")
    return rng


def _dict(**kwargs: Any) -> dict[str, Any]:
    return dict(kwargs)


# ------------------------------------------------------------------- bounded filters


def _center(value: Any, width: int = 80) -> str:
    _check_length(width, "centered string")
    return str(value).center(width)


def _indent(s: Any, width: int | str = 4, first: bool = False, blank: bool = False) -> str:
    s = str(s)
    indention = len(width) if isinstance(width, str) else width
    _check_length(len(s) + (s.count("\n") + 1) * max(indention, 0), "indented string")
    return do_indent(s, width, first, blank)


@pass_environment
def _wordwrap(
    environment: jinja2.Environment,
    s: Any,
    width: int = 79,
    break_long_words: bool = True,
    wrapstring: str | None = None,
    break_on_hyphens: bool = True,
) -> str:
    s = str(s)
    sep = environment.newline_sequence if wrapstring is None else str(wrapstring)
    lines = len(s) // max(int(width), 1) + s.count("\n") + 1
    _check_length(len(s) + lines * len(sep), "wrapped string")
    return do_wordwrap(environment, s, width, break_long_words, wrapstring, break_on_hyphens)


@pass_eval_context
def _join(eval_ctx: Any, value: Any, d: str = "", attribute: str | int | None = None) -> str:
    items = list(value)
    if attribute is not None:
        getter = make_attrgetter(eval_ctx.environment, attribute)
        items = [getter(item) for item in items]
    texts = [str(_to_text(item)) for item in items]
    sep = str(d)
    _check_length(sum(map(len, texts)) + len(sep) * max(len(texts) - 1, 0), "joined string")
    return sep.join(texts)


def _string(value: Any) -> str:
    return str(_to_text(value))


@pass_eval_context
def _replace(eval_ctx: Any, s: Any, old: Any, new: Any, count: int | None = None) -> str:
    s, old, new = str(s), str(old), str(new)
    hits = s.count(old) if old else len(s) + 1
    if count is not None and count >= 0:
        hits = min(hits, count)
    _check_length(len(s) + hits * (len(new) - len(old)), "replaced string")
    return s.replace(old, new, -1 if count is None else count)


def _format(value: Any, *args: Any, **kwargs: Any) -> str:
    _check_printf(str(value))
    result = do_format(str(value), *args, **kwargs)
    _check_length(len(result), "formatted string")
    return result


def _batch(value: Any, linecount: int, fill_with: Any = None) -> Iterator[list[Any]]:
    _check_length(linecount, "batch size", MAX_REPEAT)
    return do_batch(value, linecount, fill_with)


def _slice(value: Any, slices: int, fill_with: Any = None) -> Iterator[list[Any]]:
    _check_length(slices, "slice count", MAX_REPEAT)
    return sync_do_slice(value, slices, fill_with)


def _tojson(value: Any, indent: int | None = None) -> str:
    if indent is not None and (not isinstance(indent, int) or indent > MAX_JSON_INDENT):
        raise TemplateError(f"tojson indent must be an integer up to {MAX_JSON_INDENT}")
    return _json_text(value, indent)


def _pprint(value: Any) -> str:
    return _json_text(value, 2)


# ------------------------------------------------------------------------ Undefined


class _Undefined(StrictUndefined):
    """Fails on any use with a :class:`TemplateError` naming the full dotted path.

    ``is defined`` and ``|default`` still work, so optional values can be handled.
    """

    __slots__ = ("_fm_path",)

    def __init__(
        self,
        hint: str | None = None,
        obj: Any = missing,
        name: str | None = None,
        exc: type[Exception] = jinja2.UndefinedError,
        path: str | None = None,
    ) -> None:
        super().__init__(hint, obj, name, exc)
        self._fm_path = path

    @property
    def _path(self) -> str | None:
        if self._fm_path is not None:
            return self._fm_path
        if self._undefined_obj is missing and self._undefined_name is not None:
            return self._undefined_name  # a missing root name
        return None

    @property
    def _undefined_message(self) -> str:
        if self._undefined_hint:
            return self._undefined_hint
        path = self._path
        if path is not None:
            return f"{path!r} is undefined"
        return super()._undefined_message

    def _fail_with_undefined_error(self, *args: Any, **kwargs: Any) -> Any:
        raise TemplateError(self._undefined_message, path=self._path)


# Jinja binds its dunder methods to the *base* failure function; point them at ours.
for _cls in (Undefined, StrictUndefined):
    for _name, _value in vars(_cls).items():
        if _value is Undefined._fail_with_undefined_error and _name != "_fail_with_undefined_error":
            setattr(_Undefined, _name, _Undefined._fail_with_undefined_error)


# ----------------------------------------------------------------- code generation


def _display_path(node: nodes.Node) -> str | None:
    """The reference a Name/Getattr/Getitem chain spells, for error messages."""
    if isinstance(node, nodes.Name):
        return node.name
    if isinstance(node, nodes.Getattr):
        prefix = _display_path(node.node)
        return None if prefix is None else f"{prefix}.{node.attr}"
    if isinstance(node, nodes.Getitem):
        prefix = _display_path(node.node)
        if prefix is None:
            return None
        arg = node.arg
        if isinstance(arg, nodes.Const) and isinstance(arg.value, (str, int)):
            return f"{prefix}.{arg.value}"
        inner = _display_path(arg)
        return f"{prefix}[{inner or '?'}]"
    return None


class _CodeGenerator(CodeGenerator):
    """Passes the static path of every lookup to the environment (for error messages)
    and routes ``~`` through a size-checked join."""

    @optimizeconst
    def visit_Getattr(self, node: nodes.Getattr, frame: Frame) -> None:
        self.write("environment.getattr(")
        self.visit(node.node, frame)
        self.write(f", {node.attr!r}, {_display_path(node.node)!r})")

    @optimizeconst
    def visit_Getitem(self, node: nodes.Getitem, frame: Frame) -> None:
        if isinstance(node.arg, nodes.Slice):
            super().visit_Getitem(node, frame)
            return
        self.write("environment.getitem(")
        self.visit(node.node, frame)
        self.write(", ")
        self.visit(node.arg, frame)
        self.write(f", {_display_path(node.node)!r})")

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.fm_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


# ---------------------------------------------------------------------- environment


class _Environment(ImmutableSandboxedEnvironment):
    code_generator_class = _CodeGenerator
    intercepted_binops = frozenset({"**", "*", "+", "%"})
    default_binop_table = {
        **ImmutableSandboxedEnvironment.default_binop_table,
        "**": _pow,
        "*": _mul,
        "+": _add,
        "%": _mod,
    }

    def __init__(self) -> None:
        super().__init__(
            autoescape=False,
            undefined=_Undefined,
            finalize=_to_text,
            cache_size=0,
            auto_reload=False,
        )
        self.globals.clear()
        self.globals.update(range=_safe_range, dict=_dict)
        self.filters.update(
            center=_center,
            indent=_indent,
            wordwrap=_wordwrap,
            join=_join,
            replace=_replace,
            format=_format,
            batch=_batch,
            slice=_slice,
            tojson=_tojson,
            string=_string,
            pprint=_pprint,
        )

    def _missing(self, prefix: str | None, key: Any, obj: Any) -> Undefined:
        path = _join_path(prefix, key)
        if isinstance(obj, Mapping):
            hint = f"{path!r} is undefined" if path else f"key {key!r} is missing"
            if key == "items":
                hint += " (objects have keys, not methods: iterate with '|items')"
        else:
            detail = f"index {key} is out of range (length {len(obj)})"
            hint = f"{path!r} is undefined: {detail}" if path else detail
        return _Undefined(hint=hint, obj=obj, name=str(key), path=path)

    def _not_an_object(self, obj: Any, key: Any, prefix: str | None) -> Undefined:
        path = _join_path(prefix, key)
        where = f"{prefix!r}" if prefix is not None else "the value"
        hint = f"cannot read {key!r}: {where} is {_a(obj)}, not an object"
        if path is not None:
            hint = f"{path!r} is undefined: {where} is {_a(obj)}, not an object"
        return _Undefined(hint=hint, obj=obj, name=str(key), path=path)

    def getattr(self, obj: Any, attribute: str, prefix: str | None = None) -> Any:
        """``a.b``: the key of a dict; never a Python attribute of data."""
        if type(obj) is dict:
            try:
                return obj[attribute]
            except KeyError:
                return self._missing(prefix, attribute, obj)
        if isinstance(obj, Undefined):
            return obj._fail_with_undefined_error()
        if isinstance(obj, Mapping):
            try:
                return obj[attribute]
            except KeyError:
                return self._missing(prefix, attribute, obj)
        if _is_data(obj):
            if attribute.startswith("_"):
                raise TemplateError(
                    f"access to {attribute!r} of {_a(obj)} is not allowed",
                    path=_join_path(prefix, attribute),
                )
            return self._not_an_object(obj, attribute, prefix)
        # Template-internal objects (``loop``, ``groupby`` groups): sandbox rules apply.
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any, prefix: str | None = None) -> Any:
        """``a['b']`` reads a key, ``a[0]``/``a.0`` indexes a list (negative from the end)."""
        if isinstance(obj, Undefined):
            return obj._fail_with_undefined_error()
        if isinstance(obj, Mapping):
            try:
                return obj[argument]
            except (KeyError, TypeError):
                pass
            if isinstance(argument, int) and not isinstance(argument, bool):
                # ``a.0`` on an object: JSON keys are strings
                try:
                    return obj[str(argument)]
                except KeyError:
                    pass
            return self._missing(prefix, argument, obj)
        if isinstance(obj, (list, tuple, str)):
            if isinstance(argument, int) and not isinstance(argument, bool):
                try:
                    return obj[argument]
                except IndexError:
                    return self._missing(prefix, argument, obj)
            if isinstance(argument, str) and argument.startswith("_"):
                raise TemplateError(f"access to {argument!r} of {_a(obj)} is not allowed")
            return _Undefined(
                hint=f"{_a(obj)} can only be indexed by an integer, not {argument!r}",
                obj=obj,
                path=_join_path(prefix, argument),
            )
        if _is_data(obj):
            if isinstance(argument, str) and argument.startswith("_"):
                raise TemplateError(f"access to {argument!r} of {_a(obj)} is not allowed")
            return self._not_an_object(obj, argument, prefix)
        return super().getitem(obj, argument)

    def unsafe_undefined(self, obj: Any, attribute: str) -> Undefined:
        raise TemplateError(
            f"access to attribute {attribute!r} of a {type(obj).__name__!r} object is unsafe"
        )

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        return self.binop_table[operator](left, right)

    def fm_concat(self, parts: tuple[Any, ...]) -> str:
        texts = [str(_to_text(part)) for part in parts]
        _check_length(sum(map(len, texts)), "string")
        return "".join(texts)

    def fm_loop(self, context: Context, iterable: Any) -> Iterator[Any]:
        """Wraps every ``{% for %}`` iterable: counts iterations against the render budget."""
        budget = context.__dict__.setdefault("_fm_loop_budget", [MAX_LOOP_ITERATIONS])
        for item in iterable:
            budget[0] -= 1
            if budget[0] < 0:
                raise TemplateError(
                    f"too many loop iterations (at most {MAX_LOOP_ITERATIONS:,} per template)"
                )
            yield item


class _Context(Context):
    """Looks names up in the run context itself (no per-render copy), then the globals."""

    def resolve_or_missing(self, key: str) -> Any:
        if key in self.vars:
            return self.vars[key]
        if key in self.parent:
            return self.parent[key]
        return _GLOBALS.get(key, missing)


_ENV = _Environment()
_ENV.context_class = _Context
_GLOBALS = dict(_ENV.globals)
_NO_BLOCKS: dict[str, Any] = {}

_REFUSED_NODES: dict[type[nodes.Node], str] = {
    nodes.Macro: "{% macro %}",
    nodes.CallBlock: "{% call %}",
    nodes.FilterBlock: "{% filter %} blocks",
    nodes.AssignBlock: "{% set %}...{% endset %} blocks",
    nodes.Include: "{% include %}",
    nodes.Import: "{% import %}",
    nodes.FromImport: "{% from ... import %}",
    nodes.Extends: "{% extends %}",
    nodes.Block: "{% block %}",
}


def _prepare(tree: nodes.Template) -> None:
    """Refuse unsupported tags and wrap loop iterables with the iteration budget."""
    for node in tree.find_all(tuple(_REFUSED_NODES)):
        raise jinja2.TemplateSyntaxError(
            f"{_REFUSED_NODES[type(node)]} is not allowed in step templates", node.lineno
        )
    for loop in tree.find_all(nodes.For):
        if loop.recursive:
            raise jinja2.TemplateSyntaxError(
                "recursive loops are not allowed in step templates", loop.lineno
            )
        loop.iter = nodes.Call(
            nodes.EnvironmentAttribute("fm_loop", lineno=loop.lineno),
            [nodes.ContextReference(lineno=loop.lineno), loop.iter],
            [],
            None,
            None,
            lineno=loop.lineno,
        )
    tree.set_environment(_ENV)


# ------------------------------------------------------------------------ compiling


_TEXT = "text"  # renders to a string
_LOOKUP = "lookup"  # exactly ``{{ a.b[0] }}``: the context value itself
_VALUE = "value"  # exactly one other ``{{ expr }}``: its value, converted to plain data


def _is_lookup(node: nodes.Node) -> bool:
    while isinstance(node, (nodes.Getattr, nodes.Getitem)):
        if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Slice):
            return False
        node = node.node
    return isinstance(node, nodes.Name)


class _Compiled:
    """A compiled template string (or the error that compiling it produced)."""

    __slots__ = ("error", "mode", "references", "template")

    def __init__(
        self,
        template: Template | None = None,
        mode: str = _TEXT,
        references: tuple[str, ...] = (),
        error: str | None = None,
    ) -> None:
        self.template = template
        self.mode = mode
        self.references = references
        self.error = error


def _single_expression(tree: nodes.Template) -> nodes.Expr | None:
    """The expression when the template is exactly one ``{{ expr }}`` (plus whitespace)."""
    if len(tree.body) != 1 or not isinstance(tree.body[0], nodes.Output):
        return None
    found = None
    for node in tree.body[0].nodes:
        if isinstance(node, nodes.TemplateData):
            if node.data.strip():
                return None
        elif found is not None:
            return None
        else:
            found = node
    return found


def _syntax_message(exc: jinja2.TemplateSyntaxError) -> str:
    return f"template syntax error: {exc.message} (line {exc.lineno})"


@lru_cache(maxsize=_CACHE_SIZE)
def _compile(source: str) -> _Compiled:
    if len(source.encode("utf-8", "surrogatepass")) > MAX_SOURCE_BYTES:
        return _Compiled(error=f"template is too long (more than {MAX_SOURCE_BYTES:,} bytes)")
    try:
        tree = _ENV.parse(source)
        refs = tuple(_collect_references(tree))
        expr = _single_expression(tree)
        if expr is not None:
            tree = nodes.Template(
                [nodes.Assign(nodes.Name(_RESULT, "store", lineno=1), expr, lineno=1)], lineno=1
            )
        _prepare(tree)
        template = _ENV.from_string(tree)
    except jinja2.TemplateSyntaxError as exc:
        return _Compiled(error=_syntax_message(exc))
    except TemplateError as exc:
        return _Compiled(error=exc.message)
    except (RecursionError, MemoryError):
        return _Compiled(error="template is nested too deeply")
    mode = _TEXT if expr is None else _LOOKUP if _is_lookup(expr) else _VALUE
    return _Compiled(template=template, mode=mode, references=refs)


def _compiled(source: str) -> _Compiled:
    if len(source) > MAX_SOURCE_BYTES:  # characters >= bytes: refuse before hashing/caching
        return _Compiled(error=f"template is too long (more than {MAX_SOURCE_BYTES:,} bytes)")
    return _compile(source)


# ------------------------------------------------------------------------ rendering


_PLAIN = frozenset({dict, list, str, int, float, bool, types.NoneType})


def _to_data(value: Any) -> Any:
    """What a single-expression template yields: plain data, no template-internal objects."""
    if isinstance(value, (int, float, types.NoneType)) or type(value) is str:
        return value
    if isinstance(value, Undefined):
        return value._fail_with_undefined_error()
    if isinstance(value, str):  # Markup and other str subclasses
        return str(value)
    if isinstance(value, Mapping):
        return {key: _to_data(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, range, types.GeneratorType, Iterator)):
        items = [_to_data(item) for item in value]
        _check_length(len(items), "list", MAX_COLLECTION)
        return items
    raise TemplateError(f"the template produced a {type(value).__name__}, which is not data")


_SLOW = object()

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
SIMPLE_LOOKUP = re.compile(
    r"\{\{\s*(" + _IDENT + r"(?:\." + _IDENT + r"|\[(?:0|[1-9][0-9]{0,8})\])*)\s*\}\}"
)
"""``{{ a.b[0].c }}``: the lookups nearly every step template is made of."""
LOOKUP_SEGMENT = re.compile(r"\.?(" + _IDENT + r")|\[([0-9]+)\]")
JINJA_WORDS = frozenset(
    {"true", "false", "none", "True", "False", "None", "and", "or", "not", "in", "is", "if"}
    | {"else"}
)
"""Words Jinja reads as constants or operators, never as a name."""


@lru_cache(maxsize=_CACHE_SIZE)
def _simple_path(source: str) -> tuple | None:
    """("a", ((True, "b"), (False, 0))) when ``source`` is exactly one ``{{ a.b[0] }}``."""
    match = SIMPLE_LOOKUP.fullmatch(source.strip())
    if match is None:
        return None
    segments = LOOKUP_SEGMENT.findall(match.group(1))
    if any(name in JINJA_WORDS for name, _ in segments):
        return None
    steps = tuple((True, name) if name else (False, int(index)) for name, index in segments[1:])
    return segments[0][0], steps


def _fast_lookup(path: tuple, context: Mapping[str, Any]) -> Any:
    """``{{ step.field }}`` without running the template: the same getattr/getitem rules
    as the sandbox. Anything unusual (a missing key, non-data) returns _SLOW, and the
    template then runs and fails with its full message."""
    root, steps = path
    try:
        value = context[root]
        for is_attr, key in steps:
            value = _ENV.getattr(value, key) if is_attr else _ENV.getitem(value, key)
    except Exception:
        return _SLOW
    return value if type(value) in _PLAIN else _SLOW


def _render_string(source: str, context: Mapping[str, Any]) -> Any:
    # A plain lookup is answered without compiling the template (compiling takes most of
    # a millisecond, and a long chain has a different template per step).
    path = _simple_path(source) if len(source) <= 1024 else None
    if path is not None:
        found = _fast_lookup(path, context)
        if found is not _SLOW:
            return found
    compiled = _compiled(source)
    if compiled.error is not None:
        raise TemplateError(compiled.error)
    template = compiled.template
    assert template is not None
    try:
        ctx = _Context(_ENV, context, None, _NO_BLOCKS)
        if compiled.mode != _TEXT:
            for _ in template.root_render_func(ctx):
                pass
            result = ctx.vars[_RESULT]
            if compiled.mode == _LOOKUP and type(result) in _PLAIN:
                return result  # straight from the context: data, returned as is
            return _to_data(result)
        parts = []
        size = 0
        for chunk in template.root_render_func(ctx):
            size += len(chunk)
            if size > MAX_OUTPUT_CHARS:
                raise TemplateError(f"rendered text is too large (more than {MAX_OUTPUT_CHARS:,})")
            parts.append(chunk)
        return "".join(parts)
    except TemplateError:
        raise
    except jinja2.TemplateError as exc:
        raise TemplateError(str(exc.message or exc)) from None
    except RecursionError:
        raise TemplateError("template or data is nested too deeply") from None
    except MemoryError:
        raise TemplateError("template needs too much memory") from None
    except Exception as exc:  # any failure inside a template is a template error
        raise TemplateError(f"{type(exc).__name__}: {exc}") from None


def render(value: Any, context: Mapping[str, Any]) -> Any:
    """Render every template inside ``value`` (dict values and list items, recursively).

    Keys are not rendered; non-template strings and other values are returned unchanged;
    the result of a template is never rendered again. Raises :class:`TemplateError`.
    """
    if isinstance(value, str):
        if "{{" in value or "{%" in value:
            return _render_string(value, context)
        return value
    if isinstance(value, dict):
        return {key: render(item, context) for key, item in value.items()}
    if isinstance(value, list):
        return [render(item, context) for item in value]
    return value


# ----------------------------------------------------------------------- analysis


def _template_strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        if is_template(value):
            yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _template_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _template_strings(item)


def _static_key(node: nodes.Node) -> str | None:
    value = node.value if isinstance(node, nodes.Const) else None
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return str(value)
    return None


def _collect_references(tree: nodes.Template) -> list[str]:
    bound = {name.name for name in tree.find_all(nodes.Name) if name.ctx in ("store", "param")}
    if any(True for _ in tree.find_all(nodes.For)):
        bound.add("loop")
    found: dict[str, None] = {}

    def visit(node: nodes.Node) -> None:
        if isinstance(node, (nodes.Getattr, nodes.Getitem)):
            segments: list[str] = []
            dynamic: list[nodes.Node] = []
            while isinstance(node, (nodes.Getattr, nodes.Getitem)):
                if isinstance(node, nodes.Getattr):
                    segments.append(node.attr)
                else:
                    key = _static_key(node.arg)
                    if key is None:  # dynamic subscript: the path stops before it
                        segments.clear()
                        dynamic.append(node.arg)
                    else:
                        segments.append(key)
                node = node.node
            if isinstance(node, nodes.Name) and node.ctx == "load":
                if node.name not in bound:
                    found[".".join([node.name, *reversed(segments)])] = None
            else:
                visit(node)
            for arg in reversed(dynamic):
                visit(arg)
            return
        if isinstance(node, nodes.Name):
            if node.ctx == "load" and node.name not in bound:
                found[node.name] = None
            return
        if isinstance(node, nodes.Call) and isinstance(node.node, nodes.Name):
            # ``range(3)``: a called name is a function, not a reference
            for child in node.iter_child_nodes(exclude=("node",)):
                visit(child)
            return
        for child in node.iter_child_nodes():
            visit(child)

    visit(tree)
    return list(found)


def references(value: Any) -> list[str]:
    """Dotted paths referenced by every template inside ``value``, in first-seen order.

    ``{{ a.b[0].c }}`` gives ``"a.b.0.c"``; a dynamic subscript ends the path at the last
    static segment (``{{ a.b[i] }}`` gives ``"a.b"`` and ``"i"``). Names bound inside the
    template (loop targets, ``set``) are not references. Templates that do not compile are
    skipped (see :func:`check_syntax`).
    """
    found: dict[str, None] = {}
    for source in _template_strings(value):
        for ref in _compiled(source).references:
            found[ref] = None
    return list(found)


def reference_roots(value: Any) -> set[str]:
    """The first segment of every reference: the context keys the templates read."""
    return {ref.split(".", 1)[0] for ref in references(value)}


def check_syntax(value: Any) -> list[str]:
    """Error messages for every template string inside ``value`` that does not compile."""
    errors = []
    for source in _template_strings(value):
        error = _compiled(source).error
        if error is not None:
            errors.append(error)
    return errors
