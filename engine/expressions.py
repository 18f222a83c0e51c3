"""The safe expression evaluator: conditions, event matches and trigger filters (SPEC §6).

Expressions use Python syntax over JSON values, e.g.
``fetch.status_code == 200 and len(fetch.body.items) > 0`` or
``event.data.order_id == input.order_id``. The source is parsed with :func:`ast.parse`,
checked against a whitelist once, and turned into a tree of small closures; nothing is
ever handed to :func:`eval` or :func:`compile`.

Allowed: literals (also ``true``/``false``/``null``), list/tuple/dict/set displays,
names, key access (``a.b`` and ``a['b']`` both read the *key* of a dict, never a Python
attribute; ``a[0]``, ``a[-1]`` and ``a[1:3]`` index lists and strings), comparisons
(also chained, ``in``, ``not in``, ``is None``), ``and``/``or``/``not`` (short-circuit),
``+ - * / // % **``, unary ``-``/``+``, ``x if c else y``, and calls by bare name to
:data:`FUNCTIONS`. Everything else (method calls, dunders, lambdas, comprehensions,
f-strings, walrus, ...) is refused at compile time. Work is bounded: long sources, big
trees, deep nesting, huge powers, repetitions and concatenations are refused.
"""

from __future__ import annotations

import ast
import json
import math
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

__all__ = [
    "FUNCTIONS",
    "MAX_DEPTH",
    "MAX_INT_BITS",
    "MAX_NODES",
    "MAX_REPEAT",
    "MAX_SOURCE_LENGTH",
    "MAX_STRING_LENGTH",
    "Expression",
    "ExpressionError",
    "compile_expression",
    "evaluate",
]

MAX_SOURCE_LENGTH = 10_000
"""Longest expression source, in characters."""
MAX_NODES = 2_000
"""Most AST nodes in one expression."""
MAX_DEPTH = 200
"""Deepest nesting of sub-expressions."""
MAX_INT_BITS = 10_000
"""Largest integer an operation may produce (about 3000 decimal digits)."""
MAX_REPEAT = 100_000
"""``'ab' * n`` and ``[x] * n`` may produce at most this many characters/items."""
MAX_STRING_LENGTH = 1_000_000
"""``str + str`` and ``list + list`` may produce at most this many characters/items."""

_CACHE_SIZE = 2048
_LITERAL_NAMES = {"true": True, "false": False, "null": None}

Evaluator = Callable[[Mapping[str, Any]], Any]


class ExpressionError(ValueError):
    """An expression is malformed, forbidden, or failed while evaluating (message says why)."""


# ------------------------------------------------------------------------ helpers


def json_kind(value: Any) -> str:
    """The JSON name of a value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "list"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def _a(value: Any) -> str:
    """``_kind`` with an article, for messages: "a string", "an object", "null"."""
    kind = json_kind(value)
    if kind == "null":
        return kind
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


def _check_int(value: Any) -> Any:
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise ExpressionError(f"number is too large (more than {MAX_INT_BITS:,} bits)")
    return value


def _check_size(size: int, limit: int, what: str) -> None:
    if size > limit:
        raise ExpressionError(f"{what} would be too large ({size:,} > {limit:,})")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _describe(node: ast.AST) -> str:
    """Source text of a node, shortened, for messages."""
    try:
        text = ast.unparse(node)
    except Exception:  # only used for messages
        return "the value"
    return text if len(text) <= 60 else text[:57] + "..."


# ---------------------------------------------------------------------- functions


_JSON = json.JSONEncoder(ensure_ascii=False, default=str)


def _str(value: Any) -> str:
    """``str()`` over JSON values: booleans, null, lists and objects are written as JSON."""
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, (bool, list, tuple, Mapping)):
        parts = []
        size = 0
        for chunk in _JSON.iterencode(value):  # stops early on huge values
            size += len(chunk)
            _check_size(size, MAX_STRING_LENGTH, "string")
            parts.append(chunk)
        return "".join(parts)
    return str(value)


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


def _int(value: Any) -> int:
    if not isinstance(value, (str, int, float)):
        raise ExpressionError(f"int() needs a number or a string, not {_a(value)}")
    return _check_int(int(value))


def _float(value: Any) -> float:
    if not isinstance(value, (str, int, float)):
        raise ExpressionError(f"float() needs a number or a string, not {_a(value)}")
    return float(value)


def _round(value: Any, digits: Any = None) -> Any:
    if not isinstance(value, (int, float)) or not (digits is None or _is_int(digits)):
        raise ExpressionError("round() needs a number and an optional integer")
    return round(value) if digits is None else round(value, digits)


def _sum(values: Any, start: Any = 0) -> Any:
    if not isinstance(values, (list, tuple)):
        raise ExpressionError(f"sum() needs a list of numbers, not {_a(values)}")
    total = start
    for item in (start, *values):
        if not isinstance(item, (int, float)):
            raise ExpressionError(f"sum() can only add numbers, not {_a(item)}")
    for item in values:
        total = _check_int(total + item)
    return total


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ExpressionError(f"{name}() needs a string, not {_a(value)}")
    return value


def _lower(value: Any) -> str:
    return _text("lower", value).lower()


def _upper(value: Any) -> str:
    return _text("upper", value).upper()


def _contains(container: Any, item: Any) -> bool:
    return _in(item, container)


def _startswith(value: Any, prefix: Any) -> bool:
    return _text("startswith", value).startswith(_text("startswith", prefix))


def _endswith(value: Any, suffix: Any) -> bool:
    return _text("endswith", value).endswith(_text("endswith", suffix))


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "len": len,
    "str": _str,
    "int": _int,
    "float": _float,
    "bool": bool,
    "min": min,
    "max": max,
    "abs": abs,
    "round": _round,
    "sum": _sum,
    "any": any,
    "all": all,
    "lower": _lower,
    "upper": _upper,
    "contains": _contains,
    "startswith": _startswith,
    "endswith": _endswith,
}
"""The only callables an expression can reach, by bare name: ``len(x)``, not ``x.len()``."""


# ---------------------------------------------------------------------- operators


def _add(left: Any, right: Any) -> Any:
    if isinstance(left, str) and isinstance(right, str):
        _check_size(len(left) + len(right), MAX_STRING_LENGTH, "string")
    elif isinstance(left, (list, tuple)) and isinstance(right, (list, tuple)):
        _check_size(len(left) + len(right), MAX_STRING_LENGTH, "list")
    return _check_int(left + right)


def _sub(left: Any, right: Any) -> Any:
    return _check_int(left - right)


def _mul(left: Any, right: Any) -> Any:
    if (
        isinstance(left, int)
        and isinstance(right, int)
        and left.bit_length() + right.bit_length() > MAX_INT_BITS + 1
    ):
        raise ExpressionError(f"number is too large (more than {MAX_INT_BITS:,} bits)")
    for seq, count in ((left, right), (right, left)):
        if isinstance(seq, (str, list, tuple)) and isinstance(count, int) and count > 0:
            _check_size(len(seq) * count, MAX_REPEAT, "repetition result")
            if not isinstance(seq, str):
                weight = _weight(seq, MAX_STRING_LENGTH // count + 1)
                _check_size(weight * count, MAX_STRING_LENGTH, "repetition result")
    return _check_int(left * right)


def _div(left: Any, right: Any) -> Any:
    return left / right


def _floordiv(left: Any, right: Any) -> Any:
    return left // right


def _mod(left: Any, right: Any) -> Any:
    if isinstance(left, str):
        raise ExpressionError("the % operator only works on numbers (no string formatting)")
    return left % right


def _pow(base: Any, exponent: Any) -> Any:
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1:
        bits = int(math.log2(abs(base)) * exponent) + 1
        if bits > MAX_INT_BITS:
            raise ExpressionError(
                f"{_short(base)} ** {_short(exponent)} would be too large "
                f"(about {bits:,} bits, at most {MAX_INT_BITS:,})"
            )
    result = base**exponent
    if isinstance(result, complex):
        raise ExpressionError(f"{_short(base)} ** {_short(exponent)} is not a real number")
    return result


def _short(number: int) -> str:
    text = str(number)
    return text if len(text) <= 20 else f"<{len(text)}-digit number>"


_BINARY_OPS: dict[type[ast.operator], tuple[str, Callable[[Any, Any], Any]]] = {
    ast.Add: ("+", _add),
    ast.Sub: ("-", _sub),
    ast.Mult: ("*", _mul),
    ast.Div: ("/", _div),
    ast.FloorDiv: ("//", _floordiv),
    ast.Mod: ("%", _mod),
    ast.Pow: ("**", _pow),
}


def _in(item: Any, container: Any) -> bool:
    if isinstance(container, str):
        if not isinstance(item, str):
            raise ExpressionError(f"'in <string>' needs a string on the left, not {_a(item)}")
        return item in container
    if isinstance(container, (list, tuple, set, frozenset, Mapping)):
        try:
            return item in container
        except TypeError:  # unhashable item against a dict/set
            return False
    raise ExpressionError(f"'in' needs a string, list or object on the right, not {_a(container)}")


def _ordered(symbol: str, op: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def compare(left: Any, right: Any) -> bool:
        try:
            return op(left, right)
        except TypeError:
            raise ExpressionError(
                f"cannot compare {_a(left)} and {_a(right)} with {symbol}"
            ) from None

    return compare


_COMPARE_OPS: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Eq: lambda a, b: a == b,
    ast.NotEq: lambda a, b: a != b,
    ast.Lt: _ordered("<", lambda a, b: a < b),
    ast.LtE: _ordered("<=", lambda a, b: a <= b),
    ast.Gt: _ordered(">", lambda a, b: a > b),
    ast.GtE: _ordered(">=", lambda a, b: a >= b),
    ast.In: _in,
    ast.NotIn: lambda a, b: not _in(a, b),
    ast.Is: lambda a, b: a is b,
    ast.IsNot: lambda a, b: a is not b,
}

_REFUSED: dict[type[ast.AST], str] = {
    ast.Lambda: "lambda expressions",
    ast.ListComp: "comprehensions",
    ast.SetComp: "comprehensions",
    ast.DictComp: "comprehensions",
    ast.GeneratorExp: "generator expressions",
    ast.NamedExpr: "assignment expressions (:=)",
    ast.JoinedStr: "f-strings",
    ast.FormattedValue: "f-strings",
    ast.Starred: "starred expressions (*x)",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
}


# ----------------------------------------------------------------------- compiler


class _Compiler:
    """Turns a validated AST into nested closures ``f(names) -> value``."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    def compile(self, node: ast.AST, depth: int = 0) -> Evaluator:
        if depth > MAX_DEPTH:
            raise ExpressionError(f"expression is nested too deeply (more than {MAX_DEPTH} levels)")
        refused = _REFUSED.get(type(node))
        if refused is not None:
            raise ExpressionError(f"{refused} are not allowed")
        method = getattr(self, f"_{type(node).__name__}", None)
        if method is None:
            raise ExpressionError(f"{type(node).__name__} ({_describe(node)!r}) is not allowed")
        return method(node, depth + 1)

    # -- leaves

    def _Constant(self, node: ast.Constant, depth: int) -> Evaluator:
        value = node.value
        if value is not None and not isinstance(value, (str, int, float, bool)):
            raise ExpressionError(f"{type(value).__name__} literals are not allowed")
        _check_int(value)
        return lambda names: value

    def _Name(self, node: ast.Name, depth: int) -> Evaluator:
        name = node.id
        if name in _LITERAL_NAMES:
            value = _LITERAL_NAMES[name]
            return lambda names: value
        _refuse_dunder(name, "names")
        self.names.add(name)

        def lookup(names: Mapping[str, Any]) -> Any:
            try:
                return names[name]
            except KeyError:
                raise ExpressionError(f"name {name!r} is not defined") from None

        return lookup

    # -- displays

    def _List(self, node: ast.List, depth: int) -> Evaluator:
        items = [self.compile(elt, depth) for elt in node.elts]
        return lambda names: [item(names) for item in items]

    def _Tuple(self, node: ast.Tuple, depth: int) -> Evaluator:
        items = [self.compile(elt, depth) for elt in node.elts]
        return lambda names: tuple(item(names) for item in items)

    def _Set(self, node: ast.Set, depth: int) -> Evaluator:
        items = [self.compile(elt, depth) for elt in node.elts]
        return lambda names: {item(names) for item in items}

    def _Dict(self, node: ast.Dict, depth: int) -> Evaluator:
        if any(key is None for key in node.keys):
            raise ExpressionError("dict unpacking (**x) is not allowed")
        pairs = [
            (self.compile(key, depth), self.compile(value, depth))
            for key, value in zip(node.keys, node.values, strict=True)
            if key is not None
        ]
        return lambda names: {key(names): value(names) for key, value in pairs}

    # -- key access

    def _Attribute(self, node: ast.Attribute, depth: int) -> Evaluator:
        key = node.attr
        _refuse_dunder(key, "keys")
        target = self.compile(node.value, depth)
        where = _describe(node.value)

        def read_key(names: Mapping[str, Any]) -> Any:
            obj = target(names)
            if isinstance(obj, Mapping):
                try:
                    return obj[key]
                except KeyError:
                    raise ExpressionError(f"key {key!r} not found in {where}") from None
            raise ExpressionError(
                f"cannot read key {key!r} of {where}: it is {_a(obj)}, not an object"
            )

        return read_key

    def _Subscript(self, node: ast.Subscript, depth: int) -> Evaluator:
        target = self.compile(node.value, depth)
        where = _describe(node.value)
        if isinstance(node.slice, ast.Slice):
            return self._slice(node.slice, target, where, depth)
        if isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str):
            _refuse_dunder(node.slice.value, "keys")
        index = self.compile(node.slice, depth)

        def subscript(names: Mapping[str, Any]) -> Any:
            return _lookup(target(names), index(names), where)

        return subscript

    def _slice(self, node: ast.Slice, target: Evaluator, where: str, depth: int) -> Evaluator:
        parts = [
            None if part is None else self.compile(part, depth)
            for part in (node.lower, node.upper, node.step)
        ]

        def slice_(names: Mapping[str, Any]) -> Any:
            obj = target(names)
            bounds = [None if part is None else part(names) for part in parts]
            if not all(bound is None or _is_int(bound) for bound in bounds):
                raise ExpressionError("slice bounds must be integers")
            if not isinstance(obj, (list, tuple, str)):
                raise ExpressionError(f"cannot slice {where}: it is {_a(obj)}")
            if bounds[2] == 0:
                raise ExpressionError("slice step cannot be zero")
            return obj[slice(*bounds)]

        return slice_

    # -- operators

    def _BinOp(self, node: ast.BinOp, depth: int) -> Evaluator:
        entry = _BINARY_OPS.get(type(node.op))
        if entry is None:
            raise ExpressionError(f"operator {type(node.op).__name__} is not allowed")
        symbol, op = entry
        left = self.compile(node.left, depth)
        right = self.compile(node.right, depth)

        def binop(names: Mapping[str, Any]) -> Any:
            a, b = left(names), right(names)
            try:
                return op(a, b)
            except ZeroDivisionError:
                raise ExpressionError(f"division by zero in {symbol}") from None
            except TypeError:
                raise ExpressionError(
                    f"unsupported operand types for {symbol}: {json_kind(a)} and {json_kind(b)}"
                ) from None
            except OverflowError:
                raise ExpressionError(f"result of {symbol} is too large") from None

        return binop

    def _UnaryOp(self, node: ast.UnaryOp, depth: int) -> Evaluator:
        operand = self.compile(node.operand, depth)
        if isinstance(node.op, ast.Not):
            return lambda names: not operand(names)
        if isinstance(node.op, (ast.USub, ast.UAdd)):
            negate = isinstance(node.op, ast.USub)

            def sign(names: Mapping[str, Any]) -> Any:
                value = operand(names)
                if not isinstance(value, (int, float)):
                    raise ExpressionError(f"bad operand type for unary -/+: {json_kind(value)}")
                return -value if negate else +value

            return sign
        raise ExpressionError(f"operator {type(node.op).__name__} is not allowed")

    def _BoolOp(self, node: ast.BoolOp, depth: int) -> Evaluator:
        values = [self.compile(value, depth) for value in node.values]
        if isinstance(node.op, ast.And):

            def and_(names: Mapping[str, Any]) -> Any:
                result = True
                for value in values:
                    result = value(names)
                    if not result:
                        return result
                return result

            return and_

        def or_(names: Mapping[str, Any]) -> Any:
            result = False
            for value in values:
                result = value(names)
                if result:
                    return result
            return result

        return or_

    def _Compare(self, node: ast.Compare, depth: int) -> Evaluator:
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            if isinstance(op, (ast.Is, ast.IsNot)) and not _is_singleton(comparator):
                raise ExpressionError(
                    "'is' is only allowed with None/null, True/true or False/false "
                    "(use == to compare values)"
                )
        left = self.compile(node.left, depth)
        steps = [
            (_COMPARE_OPS[type(op)], self.compile(comparator, depth))
            for op, comparator in zip(node.ops, node.comparators, strict=True)
        ]

        def compare(names: Mapping[str, Any]) -> bool:
            a = left(names)
            for op, comparator in steps:
                b = comparator(names)
                if not op(a, b):
                    return False
                a = b
            return True

        return compare

    def _IfExp(self, node: ast.IfExp, depth: int) -> Evaluator:
        test = self.compile(node.test, depth)
        body = self.compile(node.body, depth)
        orelse = self.compile(node.orelse, depth)
        return lambda names: body(names) if test(names) else orelse(names)

    def _Call(self, node: ast.Call, depth: int) -> Evaluator:
        if not isinstance(node.func, ast.Name):
            raise ExpressionError(
                f"method calls are not allowed ({_describe(node)!r}); "
                f"call one of the functions by name: {', '.join(FUNCTIONS)}"
            )
        name = node.func.id
        _refuse_dunder(name, "names")
        function = FUNCTIONS.get(name)
        if function is None:
            raise ExpressionError(
                f"function {name!r} is not allowed; available: {', '.join(FUNCTIONS)}"
            )
        if node.keywords:
            raise ExpressionError(f"keyword arguments are not allowed (in {name}())")
        args = [self.compile(arg, depth) for arg in node.args]

        def call(names: Mapping[str, Any]) -> Any:
            values = [arg(names) for arg in args]
            try:
                return function(*values)
            except ExpressionError:
                raise
            except (TypeError, ValueError, OverflowError) as exc:
                raise ExpressionError(f"{name}() failed: {exc}") from None

        return call


def _refuse_dunder(name: str, what: str) -> None:
    if name.startswith("__"):
        raise ExpressionError(f"{what} starting with '__' are not allowed ({name!r})")


def _is_singleton(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant):
        return node.value is None or isinstance(node.value, bool)
    return isinstance(node, ast.Name) and node.id in _LITERAL_NAMES


def _lookup(obj: Any, key: Any, where: str) -> Any:
    """``obj[key]``: the key of an object, or an item of a list/string by integer index."""
    if isinstance(obj, Mapping):
        try:
            return obj[key]
        except KeyError:
            raise ExpressionError(f"key {key!r} not found in {where}") from None
        except TypeError:
            raise ExpressionError(f"{_a(key)} cannot be used as a key (in {where})") from None
    if isinstance(obj, (list, tuple, str)):
        if not _is_int(key):
            raise ExpressionError(
                f"{where} is {_a(obj)}: its index must be an integer, not {_a(key)}"
            )
        try:
            return obj[key]
        except IndexError:
            raise ExpressionError(
                f"index {key} out of range for {where} (length {len(obj)})"
            ) from None
    raise ExpressionError(f"cannot index {where}: it is {_a(obj)}")


# -------------------------------------------------------------------------- API


class Expression:
    """A compiled, validated expression. Thread-safe and reusable."""

    __slots__ = ("_evaluate", "names", "source")

    def __init__(self, source: str, evaluate: Evaluator, names: frozenset[str]) -> None:
        self.source = source
        self.names = names
        """Free names the expression reads (not counting functions and true/false/null)."""
        self._evaluate = evaluate

    def evaluate(self, names: Mapping[str, Any]) -> Any:
        """Evaluate against ``names`` (e.g. the run context). Raises :class:`ExpressionError`."""
        try:
            return self._evaluate(names)
        except ExpressionError:
            raise
        except ZeroDivisionError:
            raise ExpressionError("division by zero") from None
        except RecursionError:
            raise ExpressionError("value is nested too deeply") from None
        except MemoryError:
            raise ExpressionError("expression needs too much memory") from None
        except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
            raise ExpressionError(f"{type(exc).__name__}: {exc}") from None

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"


def compile_expression(source: str) -> Expression:
    """Parse and validate ``source`` once (cached). Raises :class:`ExpressionError`."""
    if not isinstance(source, str):
        raise ExpressionError(f"an expression must be a string, not {type(source).__name__}")
    if len(source) > MAX_SOURCE_LENGTH:
        raise ExpressionError(
            f"expression is too long ({len(source):,} characters, at most {MAX_SOURCE_LENGTH:,})"
        )
    return _compile(source)


@lru_cache(maxsize=_CACHE_SIZE)
def _compile(source: str) -> Expression:
    text = source.strip()
    if not text:
        raise ExpressionError("expression is empty")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        where = f" (line {exc.lineno}, column {exc.offset})" if exc.lineno else ""
        raise ExpressionError(f"invalid syntax: {exc.msg}{where}") from None
    except (RecursionError, MemoryError):
        raise ExpressionError("expression is nested too deeply") from None
    except ValueError as exc:  # e.g. an integer literal over Python's digit limit
        raise ExpressionError(f"invalid expression: {exc}") from None
    for count, _ in enumerate(ast.walk(tree), start=1):
        if count > MAX_NODES:
            raise ExpressionError(f"expression is too complex (more than {MAX_NODES:,} parts)")
    compiler = _Compiler()
    try:
        evaluate_ = compiler.compile(tree.body)
    except RecursionError:
        raise ExpressionError("expression is nested too deeply") from None
    return Expression(source, evaluate_, frozenset(compiler.names))


def evaluate(source: str, names: Mapping[str, Any]) -> Any:
    """``compile_expression(source).evaluate(names)``."""
    return compile_expression(source).evaluate(names)
