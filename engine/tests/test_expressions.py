"""The safe expression evaluator (SPEC §6): what `engine.expressions` promises."""

from types import MappingProxyType

import pytest

from engine.expressions import (
    FUNCTIONS,
    Expression,
    ExpressionError,
    compile_expression,
    evaluate,
)

NAMES = {
    "fetch": {
        "status_code": 200,
        "body": {"items": [{"id": 1}, {"id": 2}, {"id": 3}], "items_count": 3},
    },
    "input": {"order_id": "A-1", "tags": ["x", "y"], "amount": 12.5, "note": None},
    "event": {"name": "order.created", "data": {"order_id": "A-1"}},
    "d": {"items": "the key", "keys": 1, "get": 2},
    "s": "Hello",
}


def refused(source, names=NAMES):
    with pytest.raises(ExpressionError) as info:
        evaluate(source, names)
    return str(info.value)


# ------------------------------------------------------------------- grammar


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("1", 1),
        ("-2.5", -2.5),
        ("'text'", "text"),
        ('"double"', "double"),
        ("True", True),
        ("False", False),
        ("None", None),
        ("true", True),
        ("false", False),
        ("null", None),
        ("[1, 'a', null]", [1, "a", None]),
        ("(1, 2)", (1, 2)),
        ("{'a': 1, 'b': [true]}", {"a": 1, "b": [True]}),
        ("{1, 2, 2}", {1, 2}),
    ],
)
def test_it_evaluates_literals_and_displays(source, expected):
    assert evaluate(source, {}) == expected


def test_it_looks_names_up_in_the_given_mapping():
    assert evaluate("s", NAMES) == "Hello"
    assert evaluate("x", {"x": [1]}) == [1]


def test_it_accepts_any_mapping_of_names():
    names = MappingProxyType({"run": MappingProxyType({"attempt": 2})})
    assert evaluate("run.attempt > 1 and run['attempt'] == 2", names) is True


def test_it_refuses_an_unknown_name():
    assert refused("nope") == "name 'nope' is not defined"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("fetch.status_code", 200),
        ("fetch['status_code']", 200),
        ("event.data.order_id", "A-1"),
        ("fetch.body['items'][0].id", 1),
        ("fetch.body.items[-1].id", 3),
        ("fetch.body.items[1:]", [{"id": 2}, {"id": 3}]),
        ("fetch.body.items[::2]", [{"id": 1}, {"id": 3}]),
        ("s[0]", "H"),
        ("s[-3:]", "llo"),
        ("d.items", "the key"),
        ("d.keys + d.get", 3),
    ],
)
def test_it_reads_keys_of_objects_and_items_of_lists(source, expected):
    assert evaluate(source, NAMES) == expected


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("fetch.body.missing", "key 'missing' not found in fetch.body"),
        ("fetch.body['x']", "key 'x' not found in fetch.body"),
        ("d.values", "key 'values' not found in d"),
        ("fetch.body.items[3]", "index 3 out of range for fetch.body.items (length 3)"),
        ("fetch.body.items[-4]", "out of range"),
        ("fetch.body.items['id']", "index must be an integer"),
        ("fetch.status_code.value", "fetch.status_code: it is a number, not an object"),
        ("s.upper", "it is a string, not an object"),
        ("input.amount[0]", "cannot index input.amount"),
        ("fetch.body[[1]]", "cannot be used as a key"),
        ("s[::0]", "slice step cannot be zero"),
        ("s['a':]", "slice bounds must be integers"),
    ],
)
def test_it_explains_failed_lookups(source, message):
    assert message in refused(source)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("fetch.status_code == 200", True),
        ("fetch.status_code != 200", False),
        ("1 < 2 <= 2 < 3", True),
        ("1 < 3 < 2", False),
        ("3 > 2 >= 2", True),
        ("'x' in input.tags", True),
        ("'z' not in input.tags", True),
        ("'ell' in s", True),
        ("'order_id' in event.data", True),
        ("input.note is None", True),
        ("input.note is null", True),
        ("input.amount is not None", True),
        ("fetch.status_code == 200 and len(fetch.body.items) > 0", True),
        ("event.data.order_id == input.order_id", True),
        ("[1, 2] == [1, 2]", True),
        ("{'a': 1} == {'a': 1}", True),
        ("1 == 1.0", True),
    ],
)
def test_it_compares_values(source, expected):
    assert evaluate(source, NAMES) is expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("true and 'yes'", "yes"),
        ("0 or 'fallback'", "fallback"),
        ("not input.note", True),
        ("false and nope", False),
        ("true or nope", True),
        ("null and nope.x", None),
        ("input.note is not None and input.note.x", False),
    ],
)
def test_it_short_circuits_and_or_like_python(source, expected):
    assert evaluate(source, NAMES) == expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("7 - 10", -3),
        ("7 / 2", 3.5),
        ("7 // 2", 3),
        ("-7 // 2", -4),
        ("7 % 3", 1),
        ("2 ** 10", 1024),
        ("2 ** -1", 0.5),
        ("-input.amount", -12.5),
        ("+fetch.status_code", 200),
        ("'ab' + 'cd'", "abcd"),
        ("[1] + [2]", [1, 2]),
        ("'ab' * 3", "ababab"),
        ("[0] * 3", [0, 0, 0]),
        ("'big' if fetch.status_code > 100 else 'small'", "big"),
        ("'big' if fetch.status_code > 900 else 'small'", "small"),
    ],
)
def test_it_does_arithmetic_and_conditional_expressions(source, expected):
    assert evaluate(source, NAMES) == expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("len(input.tags)", 2),
        ("len(s)", 5),
        ("len(event.data)", 1),
        ("str(fetch.status_code)", "200"),
        ("str(true)", "true"),
        ("str(null)", "null"),
        ("str([1, 'a'])", '[1, "a"]'),
        ("int('42')", 42),
        ("int(3.9)", 3),
        ("float('2.5')", 2.5),
        ("bool([])", False),
        ("min(3, 1, 2)", 1),
        ("max([3, 1, 2])", 3),
        ("abs(-4)", 4),
        ("round(2.567, 2)", 2.57),
        ("round(2.5)", 2),
        ("sum([1, 2, 3.5])", 6.5),
        ("any([0, '', 1])", True),
        ("all([1, 'x'])", True),
        ("lower(s)", "hello"),
        ("upper(s)", "HELLO"),
        ("contains(input.tags, 'y')", True),
        ("startswith(s, 'He')", True),
        ("endswith(s, 'x')", False),
    ],
)
def test_it_offers_a_few_pure_functions_by_name(source, expected):
    assert evaluate(source, NAMES) == expected


def test_it_whitelists_exactly_the_documented_functions():
    assert set(FUNCTIONS) >= {
        "len",
        "str",
        "int",
        "float",
        "bool",
        "min",
        "max",
        "abs",
        "round",
        "sum",
        "any",
        "all",
        "lower",
        "upper",
    }
    assert not {"eval", "exec", "open", "getattr", "type", "__import__"} & set(FUNCTIONS)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("'a' < 1", "cannot compare a string and a number with <"),
        ("[1] >= {'a': 1}", "cannot compare a list and an object with >="),
        ("1 / 0", "division by zero"),
        ("1 % 0", "division by zero"),
        ("'a' + 1", "unsupported operand types for +: string and number"),
        ("'a' - 'b'", "unsupported operand types for -"),
        ("-s", "bad operand type"),
        ("1 in 5", "'in' needs a string, list or object on the right, not a number"),
        ("1 in s", "'in <string>' needs a string on the left"),
        ("len(5)", "len() failed"),
        ("int('abc')", "int() failed"),
        ("int([])", "int() needs a number or a string"),
        ("min([])", "min() failed"),
        ("sum(['a'])", "sum() can only add numbers"),
        ("lower(1)", "lower() needs a string"),
        ("len()", "len() failed"),
        ("'%s' % 1", "only works on numbers"),
        ("(-8) ** 0.5", "not a real number"),
        ("2.0 ** 10000", "too large"),
    ],
)
def test_it_turns_evaluation_failures_into_clear_expression_errors(source, message):
    assert message in refused(source)


def test_it_reports_syntax_errors():
    message = refused("fetch.status_code ==")
    assert message.startswith("invalid syntax")
    assert "expression is empty" in refused("   ")


def test_it_refuses_a_source_that_is_not_a_string():
    with pytest.raises(ExpressionError, match="must be a string"):
        compile_expression(42)


def test_it_tolerates_surrounding_whitespace():
    assert evaluate("  1 + 1\n", {}) == 2


# ----------------------------------------------------------- compile once, reuse


def test_it_compiles_once_and_caches_by_source():
    first = compile_expression("input.amount > 10")
    assert compile_expression("input.amount > 10") is first
    assert isinstance(first, Expression)
    assert first.source == "input.amount > 10"
    assert first.evaluate(NAMES) is True
    assert first.evaluate({"input": {"amount": 1}}) is False


def test_it_lists_the_free_names_an_expression_reads():
    expression = compile_expression("len(fetch.body.items) > 0 and input.x == true or y[z]")
    assert expression.names == frozenset({"fetch", "input", "y", "z"})


def test_it_validates_at_compile_time_without_any_names():
    with pytest.raises(ExpressionError, match="not allowed"):
        compile_expression("s.upper()")
    compile_expression("nope.x == 1")  # unknown names only fail when evaluated


def test_it_raises_value_errors():
    assert issubclass(ExpressionError, ValueError)


# ---------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("s.upper()", "method calls are not allowed"),
        ("open('/etc/passwd')", "function 'open' is not allowed"),
        ("eval('1')", "function 'eval' is not allowed"),
        ("getattr(s, 'upper')", "function 'getattr' is not allowed"),
        ("len(s, key=1)", "keyword arguments are not allowed"),
        ("len(*input.tags)", "starred expressions (*x) are not allowed"),
        ("max(**d)", "keyword arguments are not allowed"),
        ("{**d}", "dict unpacking (**x) is not allowed"),
        ("[*input.tags]", "starred expressions (*x) are not allowed"),
        ("lambda: 1", "lambda expressions are not allowed"),
        ("[x for x in input.tags]", "comprehensions are not allowed"),
        ("{x for x in input.tags}", "comprehensions are not allowed"),
        ("{x: 1 for x in input.tags}", "comprehensions are not allowed"),
        ("(x for x in input.tags)", "generator expressions are not allowed"),
        ("(y := 1)", "assignment expressions (:=) are not allowed"),
        ("f'{s}'", "f-strings are not allowed"),
        ("s.__class__", "keys starting with '__' are not allowed"),
        ("d['__class__']", "keys starting with '__' are not allowed"),
        ("__builtins__", "names starting with '__' are not allowed"),
        ("1 is 1", "'is' is only allowed with None"),
        ("1 | 2", "operator BitOr is not allowed"),
        ("1 << 2", "operator LShift is not allowed"),
        ("~1", "operator Invert is not allowed"),
        ("b'bytes'", "bytes literals are not allowed"),
        ("1j", "complex literals are not allowed"),
        ("...", "ellipsis literals are not allowed"),
        ("s[1:2, 3]", "Slice"),
    ],
)
def test_it_refuses_everything_outside_the_grammar_at_compile_time(source, message):
    with pytest.raises(ExpressionError) as info:
        compile_expression(source)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("().__class__.__bases__[0].__subclasses__()", "not allowed"),
        ("().__class__", "keys starting with '__' are not allowed"),
        ("__import__('os')", "names starting with '__' are not allowed ('__import__')"),
        ("__import__('os').system('id')", "not allowed"),
        ("lambda: 1", "lambda expressions are not allowed"),
        ("[x for x in y]", "comprehensions are not allowed"),
        ("(x for x in y)", "generator expressions are not allowed"),
        ("(1 for _ in ()).gi_frame.f_globals", "generator expressions are not allowed"),
        ("'{}'.format(s)", "method calls are not allowed"),
        ("'{0.__class__}'.format(1)", "method calls are not allowed"),
        ("'{0.__globals__}'.format(len)", "method calls are not allowed"),
        ("9**9**9", "too large"),
        ("'a' * 10**9", "too large"),
        ("[0] * 10**9", "too large"),
        ("10 ** 100000", "too large"),
        ("2 ** 9999 * 2 ** 9999", "too large"),
        ("(" * 10_000 + "1" + ")" * 10_000, "too long"),
        ("[" * 10_000 + "]" * 10_000, "too long"),
        ("-(" * 10_000 + "1" + ")" * 10_000, "too long"),
        ("(" * 4_000 + "1" + ")" * 4_000, "too many nested parentheses"),
        ("[" * 4_999 + "]" * 4_999, "too many nested parentheses"),
        ("-" * 9_000 + "1", "nested too deeply"),
        ("1" + "+1" * 4_000, "nested too deeply"),
        ("-" * 300 + "1", "nested too deeply"),
        ("not " * 2_400 + "x", "too complex"),
        ("1" * 5_000, "invalid syntax"),
    ],
    ids=lambda value: value[:40] if isinstance(value, str) else None,
)
def test_it_refuses_hostile_expressions_with_a_clear_error(source, message):
    assert message in refused(source, {"s": "x", "y": []})


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("big + big", "string would be too large"),
        ("[big] * 100", "repetition result would be too large"),
        ("str([big] * 20)", "too large"),
        ("len(big * 2)", "repetition result would be too large"),
    ],
)
def test_it_bounds_the_size_of_strings_and_lists(source, message):
    assert message in refused(source, {"big": "x" * 600_000})


def test_it_keeps_big_but_reasonable_numbers():
    assert evaluate("2 ** 9000 > 10 ** 2000", {}) is True
    assert evaluate("len('ab' * 50000)", {}) == 100_000
