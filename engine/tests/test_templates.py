"""Step-config templates (SPEC §3, §6): what `engine.templates` promises."""

from types import MappingProxyType

import pytest

from engine import templates
from engine.templates import (
    TemplateError,
    check_syntax,
    is_template,
    reference_roots,
    references,
    render,
)

CONTEXT = {
    "input": {"user_id": 7, "name": "Ada", "flag": True, "nothing": None},
    "fetch": {
        "status_code": 200,
        "body": {
            "items": [{"name": "a", "n": 1}, {"name": "b", "n": 2}],
            "count": 2,
            "1": "one",
        },
    },
    "a": {"items": [1], "keys": "k", "values": "v", "get": "g", "x": "{{ secret }}"},
    "secret": "s3cr3t",
}


def refused(source, context=CONTEXT):
    with pytest.raises(TemplateError) as info:
        render(source, context)
    return info.value


# --------------------------------------------------------------------- rendering


@pytest.mark.parametrize("value", [1, 2.5, None, True, "plain text", "{ not a template }", []])
def test_it_returns_values_without_templates_unchanged(value):
    assert render(value, CONTEXT) == value


def test_it_renders_every_template_inside_dicts_and_lists_but_never_keys():
    config = {
        "url": "https://x/users/{{ input.user_id }}",
        "{{ input.name }}": "key stays",
        "nested": {"list": ["{{ input.name }}", 3, {"deep": "{{ fetch.status_code }}"}]},
    }
    assert render(config, CONTEXT) == {
        "url": "https://x/users/7",
        "{{ input.name }}": "key stays",
        "nested": {"list": ["Ada", 3, {"deep": 200}]},
    }


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ fetch.body.items }}", CONTEXT["fetch"]["body"]["items"]),
        ("{{ fetch.body }}", CONTEXT["fetch"]["body"]),
        ("{{ fetch.status_code }}", 200),
        ("{{ input.nothing }}", None),
        ("{{ input.flag }}", True),
        ("  {{ fetch.body.count }}\n", 2),
        ("{{ fetch.body.items|length }}", 2),
        ("{{ fetch.body.items|map(attribute='name')|list }}", ["a", "b"]),
        ("{{ fetch.body.items|map(attribute='n') }}", [1, 2]),
        ("{{ [input.user_id, fetch.status_code] }}", [7, 200]),
        ("{{ {'id': input.user_id} }}", {"id": 7}),
    ],
)
def test_it_keeps_the_type_of_a_string_that_is_exactly_one_expression(source, expected):
    assert render(source, CONTEXT) == expected


def test_it_accepts_any_mapping_as_the_context():
    scope = MappingProxyType({**CONTEXT, "run": {"id": "r1"}})
    assert render({"x": "{{ run.id }}", "y": "{{ input.user_id }}!"}, scope) == {
        "x": "r1",
        "y": "7!",
    }
    assert render("{{ p }}", {"p": MappingProxyType({"k": 1})}) == {"k": 1}


def test_it_returns_the_context_value_itself_for_a_single_lookup():
    assert render("{{ fetch.body }}", CONTEXT) is CONTEXT["fetch"]["body"]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("id={{ input.user_id }}", "id=7"),
        ("{{ input.user_id }}{{ input.name }}", "7Ada"),
        ("{{ fetch.body.items.0 }}!", '{"name": "a", "n": 1}!'),
        ("items: {{ a.items }}", "items: [1]"),
        ("[{{ input.nothing }}]", "[]"),
        ("{{ input.flag }} / {{ not input.flag }}", "true / false"),
        ("{% if input.flag %}yes{% else %}no{% endif %}", "yes"),
        ("{% for i in fetch.body.items %}{{ loop.index }}={{ i.name }};{% endfor %}", "1=a;2=b;"),
        ("{% set n = fetch.body.count %}{{ n * 2 }}", "4"),
        ("{{ 'x' ~ input.user_id ~ input.nothing ~ a.items }}", "x7[1]"),
    ],
)
def test_it_renders_a_template_inside_a_longer_string_as_json_like_text(source, expected):
    assert render(source, CONTEXT) == expected


def test_it_never_renders_data_from_the_context_again():
    assert render("{{ a.x }}", CONTEXT) == "{{ secret }}"
    assert render("v={{ a.x }}", CONTEXT) == "v={{ secret }}"
    assert render(["{{ a.x }}", {"k": "{{ a }}"}], CONTEXT) == [
        "{{ secret }}",
        {"k": CONTEXT["a"]},
    ]
    assert render("{{ [a.x]|join }}", CONTEXT) == "{{ secret }}"


# ------------------------------------------------------------------ lookups


def test_it_reads_the_keys_of_a_dict_never_its_methods():
    assert render("{{ a.items }}", CONTEXT) == [1]
    assert render("{{ a.keys }}{{ a.values }}{{ a.get }}", CONTEXT) == "kvg"
    assert render("{{ a['items'] }}", CONTEXT) == [1]


def test_it_indexes_lists_with_numeric_segments_and_subscripts():
    assert render("{{ fetch.body.items.0.name }}", CONTEXT) == "a"
    assert render("{{ fetch.body.items[1].name }}", CONTEXT) == "b"
    assert render("{{ fetch.body.items[-1].n }}", CONTEXT) == 2
    assert render("{{ fetch.body.items[1:] }}", CONTEXT) == [{"name": "b", "n": 2}]
    assert render("{{ fetch.body.items[i].n }}", {**CONTEXT, "i": 1}) == 2


def test_it_reads_numeric_keys_of_an_object_as_strings():
    assert render("{{ fetch.body.1 }}", CONTEXT) == "one"


def test_it_names_the_full_path_of_a_missing_key():
    error = refused("{{ fetch.body.missing }}")
    assert str(error) == "'fetch.body.missing' is undefined"
    assert error.path == "fetch.body.missing"


def test_it_names_a_missing_key_inside_text_and_expressions_too():
    assert refused("total: {{ fetch.body.total }}").path == "fetch.body.total"
    assert refused("{{ fetch.body.total + 1 }}").path == "fetch.body.total"
    assert refused("{% for x in fetch.rows %}{% endfor %}").path == "fetch.rows"


def test_it_names_only_the_missing_root_when_a_step_is_not_in_the_context():
    error = refused("{{ nope.x.y }}")
    assert "'nope' is undefined" in str(error)
    assert error.path == "nope"


def test_it_names_the_path_of_an_index_out_of_range():
    error = refused("{{ fetch.body.items.3 }}")
    assert error.path == "fetch.body.items.3"
    assert "out of range" in str(error)
    assert refused("{{ fetch.body.items[5].name }}").path == "fetch.body.items.5"


def test_it_names_the_path_when_reading_a_key_of_something_that_is_not_an_object():
    error = refused("{{ fetch.status_code.value }}")
    assert error.path == "fetch.status_code.value"
    assert "not an object" in str(error)


def test_it_lets_default_and_is_defined_handle_missing_values():
    assert render("{{ fetch.body.missing|default('none') }}", CONTEXT) == "none"
    assert render("{{ nope|default(3) }}", CONTEXT) == 3
    assert render("{{ fetch.body.missing is defined }}", CONTEXT) is False
    assert render("{% if nope is defined %}y{% else %}n{% endif %}", CONTEXT) == "n"


@pytest.mark.parametrize(
    "source",
    [
        "{{ input.name.upper() }}",
        "{{ input.name.format }}",
        "{{ fetch.body.items.append }}",
        "{{ fetch.status_code.real }}",
        "{{ input.name|attr('upper') }}",
    ],
)
def test_it_never_exposes_python_attributes_of_data(source):
    refused(source)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ input.name|upper }}", "ADA"),
        ("{{ input.name|lower }}", "ada"),
        ("{{ fetch.body.items|length }}", 2),
        ("{{ missing|default('d') }}", "d"),
        (
            "{{ fetch.body|tojson }}",
            '{"items": [{"name": "a", "n": 1}, {"name": "b", "n": 2}], "count": 2, "1": "one"}',
        ),
        ("{{ [1, 2, 3]|join(',') }}", "1,2,3"),
        ("{{ fetch.body.items|join(',', attribute='name') }}", "a,b"),
        ("{{ '42'|int + 1 }}", 43),
        ("{{ 3.14159|round(2) }}", 3.14),
        ("{{ fetch.body.items|first }}", {"name": "a", "n": 1}),
        ("{{ fetch.body.items|selectattr('n', 'gt', 1)|map(attribute='name')|list }}", ["b"]),
        (
            "{{ fetch.body.items|sort(attribute='n', reverse=true)|map(attribute='n')|list }}",
            [2, 1],
        ),
        ("{{ {'b': 1, 'a': 2}|dictsort }}", [["a", 2], ["b", 1]]),
        ("{{ {'k': 1}|items|list }}", [["k", 1]]),
        ("{{ 'a-b'|replace('-', '+') }}", "a+b"),
        ("{{ 'hello world'|truncate(8, true, '', 0) }}", "hello wo"),
        ("{{ '%s=%05.1f'|format('x', 2.5) }}", "x=002.5"),
        ("{{ 'x'|center(5) }}", "  x  "),
        ("{{ 'a\nb'|indent(2) }}", "a\n  b"),
        ("{{ fetch.body.items|string }}", '[{"name": "a", "n": 1}, {"name": "b", "n": 2}]'),
        ("{{ range(3)|list }}", [0, 1, 2]),
        ("{{ dict(a=1) }}", {"a": 1}),
    ],
)
def test_it_keeps_the_usual_filters_and_the_safe_globals_working(source, expected):
    assert render(source, CONTEXT) == expected


@pytest.mark.parametrize("name", ["cycler", "joiner", "namespace", "lipsum"])
def test_it_offers_no_globals_beyond_range_and_dict(name):
    assert refused(f"{{{{ {name}() }}}}").path == name


# ----------------------------------------------------------------- bounded work


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{{ 9 ** (9 ** 9) }}", "too large"),
        ("{{ 2 ** 100000 }}", "too large"),
        ("{{ 'a' * 10 ** 9 }}", "too large"),
        ("{{ [0] * 1000000 }}", "too large"),
        ("{{ 10 ** 1000 * 10 ** 1000 * 10 ** 1000 * 10 ** 1000 }}", "too large"),
        ("{{ range(100000)|list }}", "range() too big"),
        ("{% for i in range(10000) %}{{ 'x' * 1000 }}{% endfor %}", "rendered text is too large"),
        (
            "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}",
            "too many loop iterations",
        ),
        (
            "{% set s = 'x' * 100000 %}{% set s = s ~ s %}{% set s = s ~ s %}{% set s = s ~ s %}"
            "{% set s = s ~ s %}{{ s|length }}",
            "too large",
        ),
        ("{% set s = 'x' * 100000 %}{{ [s] * 10000 }}", "too large"),
        (
            "{% set s = 'x' * 100000 %}{% set l = [s] * 5 %}{% set l = l + l + l %}x={{ l }}",
            "JSON text would be too large",
        ),
        ("{{ [2 ** 9000] * 100000 }}", "too large"),
        ("{% set s = 'x' * 100000 %}{{ ([s] * 100)|join }}", "too large"),
        ("{% set s = 'x' * 100000 %}{{ s|replace('', s) }}", "too large"),
        ("{{ 'x'|center(100000000) }}", "too large"),
        ("{{ 'x'|indent(100000000, true) }}", "too large"),
        ("{{ [1]|batch(100000000, 0)|list }}", "too large"),
        ("{{ '%999999999d' % 1 }}", "not allowed"),
        ("{{ '%*d'|format(999999999, 1) }}", "not allowed"),
        ("{{ fetch|tojson(100000) }}", "indent"),
    ],
)
def test_it_bounds_the_work_a_template_can_do(source, message):
    assert message in str(refused(source))


def test_it_evaluates_powers_left_to_right_like_jinja_so_9_9_9_is_small():
    assert render("{{ 9 ** 9 ** 9 }}", {}) == (9**9) ** 9


def test_it_refuses_templates_over_64_kb():
    source = "{{ input.name }}" + "x" * (64 * 1024)
    assert "too long" in str(refused(source))
    assert check_syntax(source) == [f"template is too long (more than {64 * 1024:,} bytes)"]


def test_it_refuses_deeply_nested_templates_without_crashing():
    for opening, closing in [("(", ")"), ("[", "]"), ("-(", ")")]:
        source = "{{ " + opening * 10_000 + "1" + closing * 10_000 + " }}"
        assert "nested too deeply" in str(refused(source))


def test_it_wraps_a_deeply_nested_value_in_text_into_a_template_error():
    deep: list = []
    for _ in range(5000):
        deep = [deep]
    refused("x={{ v }}", {"v": deep})


# ----------------------------------------------------------------- hostile input


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{{ ().__class__.__bases__[0].__subclasses__() }}", "not allowed"),
        ("{{ ''.__class__.__mro__ }}", "not allowed"),
        ("{{ a.__dict__ }}", "a.__dict__"),
        ("{{ input.name.__class__ }}", "not allowed"),
        ("{{ input['name']['__class__'] }}", "not allowed"),
        ("{{ cycler.__init__.__globals__ }}", "'cycler' is undefined"),
        ("{{ range.__self__ }}", "__self__"),
        ("{{ __import__('os') }}", "'__import__' is undefined"),
        ("{{ lambda: 1 }}", "syntax error"),
        ("{{ [x for x in y] }}", "syntax error"),
        ("{{ (x for x in y) }}", "syntax error"),
        ("{{ (1 for _ in ()).gi_frame.f_globals }}", "syntax error"),
        ("{{ (fetch.body.items|map('string')).gi_frame.f_globals }}", "unsafe"),
        ("{% for x in [1] %}{{ loop.__class__ }}{% endfor %}", "unsafe"),
        ("{{ self._TemplateReference__context }}", "unsafe"),
        ('{{ "{0.__class__}".format(1) }}', "format"),
        ("{{ '{0.__class__}'|attr('format') }}", "format"),
        ("{{ 9 ** (9 ** 9) }}", "too large"),
        ("{{ 'a' * 10 ** 9 }}", "too large"),
        ("{{ " + "(" * 10_000 + "1" + ")" * 10_000 + " }}", "nested too deeply"),
        ("{{ " + "[" * 10_000 + "]" * 10_000 + " }}", "nested too deeply"),
        ("{{ " + "-(" * 10_000 + "1" + ")" * 10_000 + " }}", "nested too deeply"),
    ],
    ids=lambda value: value[:40] if isinstance(value, str) else None,
)
def test_it_refuses_hostile_templates_with_a_clear_error(source, message):
    assert message in str(refused(source))


@pytest.mark.parametrize(
    "source",
    [
        "{% macro m() %}x{% endmacro %}{{ m() }}",
        "{% include 'other' %}",
        "{% import 'other' as o %}",
        "{% from 'other' import x %}",
        "{% extends 'base' %}",
        "{% block b %}{% endblock %}",
        "{% set s %}{{ 'x' }}{% endset %}",
        "{% filter upper %}x{% endfilter %}",
        "{% for x in [1] recursive %}{{ loop([]) }}{% endfor %}",
    ],
)
def test_it_refuses_tags_that_buffer_output_or_load_templates(source):
    assert "not allowed" in str(refused(source))


# ------------------------------------------------------------------- errors


def test_it_reports_syntax_errors_with_the_line():
    error = refused("line one\n{{ input.name + }}")
    assert "syntax error" in str(error)
    assert "line 2" in str(error)
    assert error.path is None


def test_it_wraps_runtime_failures_into_template_errors():
    assert "division by zero" in str(refused("{{ 1 / 0 }}"))
    assert isinstance(refused("{{ 1 / 0 }}"), ValueError)


def test_it_caches_compiled_templates_by_source():
    source = "{{ input.user_id }} cached"
    render(source, CONTEXT)
    hits = templates._compile.cache_info().hits
    render(source, {"input": {"user_id": 8}})
    assert templates._compile.cache_info().hits == hits + 1


# ----------------------------------------------------------------- analysis


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ fetch.body.items }} {{ input.user_id }}", ["fetch.body.items", "input.user_id"]),
        ("{{ a.b[0].c }}", ["a.b.0.c"]),
        ("{{ a.b.0.c }}", ["a.b.0.c"]),
        ("{{ a['b'] }}", ["a.b"]),
        ("{{ a.b[i].c }}", ["a.b", "i"]),
        ("{{ item }} {{ index }}", ["item", "index"]),
        ("{{ x.y }}{{ x.y }}{{ x }}", ["x.y", "x"]),
        ("{{ fetch.items|map(attribute='name')|join(',') }}", ["fetch.items"]),
        ("{% for row in fetch.rows %}{{ row.id }}{{ loop.index }}{% endfor %}", ["fetch.rows"]),
        ("{% set n = input.count %}{{ n + other.v }}", ["input.count", "other.v"]),
        ("{{ range(3)|list }}{{ dict(a=s.v) }}", ["s.v"]),
        ("{{ (q|first).w }}", ["q"]),
        ("{% if c.ok %}{{ t.v }}{% else %}{{ f.v }}{% endif %}", ["c.ok", "t.v", "f.v"]),
        ("no templates", []),
    ],
)
def test_it_lists_the_dotted_paths_a_template_references(source, expected):
    assert references(source) == expected


def test_it_collects_references_through_dicts_and_lists_in_first_seen_order():
    config = {
        "url": "{{ fetch.body.items }}",
        "list": ["{{ input.user_id }}", {"x": "{{ fetch.body.items }} {{ item }}"}],
        "n": 3,
        "{{ keys.are.not.templates }}": "plain",
    }
    assert references(config) == ["fetch.body.items", "input.user_id", "item"]
    assert reference_roots(config) == {"fetch", "input", "item"}


def test_it_skips_templates_that_do_not_compile_when_listing_references():
    assert references(["{{ broken", "{{ ok.v }}"]) == ["ok.v"]


def test_it_recognises_template_strings():
    assert is_template("{{ x }}")
    assert is_template("{% if x %}{% endif %}")
    assert not is_template("{ x }")
    assert not is_template("plain")


def test_it_reports_every_template_that_does_not_compile():
    config = {
        "ok": "{{ input.name }}",
        "plain": "no template {",
        "bad": ["{{ x", "{% for %}", "{% macro m() %}{% endmacro %}"],
    }
    errors = check_syntax(config)
    assert len(errors) == 3
    assert all("syntax error" in error for error in errors)
    assert "not allowed" in errors[2]
    assert check_syntax({"ok": "{{ a.b }}", "n": 1}) == []


@pytest.mark.parametrize(
    "source",
    [
        "{{ a.b }}",
        " {{ a.b[1] }} ",
        "{{ a.list[0].x }}",
        "{{ a.missing }}",
        "{{ a.b[9] }}",
        "{{ nope.x }}",
        "{{ a.s.x }}",
        "{{ a.n }}",
        "{{ a.dict }}",
    ],
)
def test_plain_lookups_answer_exactly_as_the_template_would(source):
    """Plain lookups skip compiling the template; the answer (or the error) is the same."""
    context = {"a": {"b": [1, 2], "list": [{"x": None}], "s": "text", "n": 1.5, "dict": {"k": 1}}}
    assert templates._simple_path(source) is not None

    def outcome(render_fn):
        try:
            return ("value", render_fn())
        except TemplateError as exc:
            return ("error", str(exc))

    fast = outcome(lambda: render(source, context))
    original = templates._simple_path
    try:
        templates._simple_path = lambda source: None  # force the compiled template
        slow = outcome(lambda: render(source, context))
    finally:
        templates._simple_path = original
    assert fast == slow
