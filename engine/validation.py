"""Validation of a workflow definition: every problem at once, each tied to a node or edge.

`validate_definition` checks the canvas JSON (SPEC §2) without running anything:

* shape: ``nodes`` and ``edges`` lists of objects, string ids, duplicated ids, node ids
  that work as template roots (``{{ fetch.body }}``) and are not reserved names;
* step types: known to the registry; their config checked against the type's JSON Schema
  (a template string such as ``"{{ input.wait }}"`` may stand for any value at run time,
  so errors about a template string itself are not reported);
* the node's policy fields (``on_error``, ``max_attempts``, ``backoff_*``, ``timeout_seconds``,
  ``join``, ``label``) and the workflow's ``settings``;
* the graph: edges to missing nodes, cycles (one problem per strongly connected component),
  orphans, condition nodes with both branches wired and no other outgoing edges;
* data flow: template syntax, and every template reference / expression name must be a
  context root (``input``, ``state``, ``run``) or a step *upstream* of the node using it.

Problems come in a stable order: definition-level problems, then each node in definition
order (all of its problems together), then each edge, then cycles, then settings.

Nothing recurses and the work is (near-)linear in the size of the definition, so a
10,000-step workflow validates quickly: simple ``{{ a.b[0] }}`` templates are analysed
with a regular expression instead of compiling them with Jinja, configs that differ only
in their template strings are checked against the schema once, and "is step X upstream
of step Y" is answered without computing an upstream set per node (see `_Ancestry`).
"""

from __future__ import annotations

import json
import math
import re
import zoneinfo
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple

from croniter import CroniterBadDateError, CroniterError, croniter
from jsonschema import Draft202012Validator, ValidationError

from engine.expressions import FUNCTIONS, ExpressionError, compile_expression, json_kind
from engine.graph import Edge, Graph
from engine.policy import BACKOFF_CHOICES, JOIN_CHOICES, ON_ERROR_CHOICES
from engine.registry import Registry, StepType
from engine.registry import registry as default_registry
from engine.templates import JINJA_WORDS as _JINJA_WORDS
from engine.templates import LOOKUP_SEGMENT as _SEGMENT
from engine.templates import SIMPLE_LOOKUP as _SIMPLE_VAR
from engine.templates import check_syntax, is_template, references

__all__ = [
    "CONTEXT_ROOTS",
    "CRON_ALIASES",
    "NODE_ID_PATTERN",
    "RESERVED_NAMES",
    "Problem",
    "cron_error",
    "timezone_error",
    "validate_definition",
]

NODE_ID_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")
"""A node id is a template root (``{{ fetch.body }}``): an identifier of at most 100 chars."""

RESERVED_NAMES = frozenset(
    {"input", "state", "item", "index", "event", "run", "loop", "true", "false", "none", "null"}
)
"""Names a node id cannot take: they mean something else in templates and expressions."""

CONTEXT_ROOTS = frozenset({"input", "state", "run"})
"""Template roots that are not steps: the run input, the workflow state, the run itself."""

MAX_ATTEMPTS = 100
MAX_BACKOFF_BASE = 300.0
MAX_CONCURRENCY = 1000

# Config keys that hold a safe expression (not a template): type -> (key, extra roots).
EXPRESSION_FIELDS: dict[str, tuple[str, frozenset[str]]] = {
    "condition": ("expression", frozenset({"input", "state", "run"})),
    "wait_for_event": ("match", frozenset({"input", "state", "event"})),
}
# Raw config keys (rendered later by the handler) whose templates are still checked, with
# the extra roots the handler provides: for_each renders step_config once per item.
_RAW_TEMPLATE_SCOPES: dict[tuple[str, str], frozenset[str]] = {
    ("for_each", "step_config"): frozenset({"item", "index"}),
}
_NO_NAMES: frozenset[str] = frozenset()
_MAX_CYCLE_SHOWN = 20
_POLICY_KEYS = frozenset(
    {"label", "on_error", "max_attempts", "backoff_strategy", "backoff_base"}
    | {"timeout_seconds", "join"}
)
_ROOT_HINTS = {
    "item": "'item' and 'index' only exist inside a for_each's step_config",
    "index": "'item' and 'index' only exist inside a for_each's step_config",
    "event": "'event' only exists in a wait_for_event's match expression",
}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a definition."""

    loc: tuple[str, ...]
    """Where: ``("nodes", "fetch", "data", "config", "url")``, ``("edges", "e1")``,
    ``("definition", "nodes")``, ``("settings", "max_concurrency")``. A node or edge
    without a usable id is located by its index in the list."""
    msg: str
    """A sentence for a person."""
    node_id: str | None = None
    edge_id: str | None = None
    code: str = ""
    """cycle, unknown_type, missing_config, invalid_config, dangling_edge, orphan,
    condition_branches, bad_reference, template_syntax, expression, duplicate_id,
    invalid_id, invalid_policy, invalid_trigger, shape."""

    def as_dict(self) -> dict:
        out: dict[str, Any] = {"loc": list(self.loc), "msg": self.msg}
        if self.node_id is not None:
            out["node_id"] = self.node_id
        if self.edge_id is not None:
            out["edge_id"] = self.edge_id
        out["code"] = self.code
        return out


def validate_definition(definition: Any, registry: Registry = default_registry) -> list[Problem]:
    """Every problem of `definition` (see the module docstring); ``[]`` when it is valid."""
    return _Validator(definition, registry).run()


# ------------------------------------------------------------------------- helpers


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _dotted(path: tuple[str, ...]) -> str:
    return ".".join(path)


def _sentence(text: str) -> str:
    text = text.strip()
    if text and text[0].islower():
        text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def _strings(value: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], str]]:
    """Every template string inside dicts/lists (values only) with its path, in order.

    Iterative, so deeply nested configs cannot exhaust the stack.
    """
    stack: list[tuple[tuple[str, ...], Any]] = [(path, value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, str):
            if is_template(item):
                yield where, item
        elif isinstance(item, dict):
            stack.extend(((*where, str(k)), v) for k, v in reversed(list(item.items())))
        elif isinstance(item, list):
            stack.extend(((*where, str(i)), v) for i, v in reversed(list(enumerate(item))))


# ----------------------------------------------------------------- template analysis

_FAST_MAX_LENGTH = 4096


def _simple_references(source: str) -> tuple[str, ...] | None:
    """The references of a template made only of text and ``{{ a.b[0].c }}`` lookups, or
    None when it is anything else (then Jinja must parse it).

    Compiling a template with Jinja takes most of a millisecond; nearly every step template
    is a plain lookup, so this keeps validating big workflows fast. The result is the same
    as `engine.templates.references` (``a.b[0]`` gives ``"a.b.0"``).
    """
    if len(source) > _FAST_MAX_LENGTH or "{%" in source or "{#" in source:
        return None
    found: dict[str, None] = {}
    pos = 0
    while True:
        start = source.find("{{", pos)
        if start < 0:
            return tuple(found)
        match = _SIMPLE_VAR.match(source, start)
        if match is None:
            return None
        path = match.group(1)
        if "[" in path:
            path = ".".join(a or b for a, b in _SEGMENT.findall(path))
        if path.split(".", 1)[0] in _JINJA_WORDS:
            return None
        found[path] = None
        pos = match.end()


@lru_cache(maxsize=4096)
def _analyse_template(source: str) -> tuple[tuple[str, ...], str | None]:
    """(references, syntax error or None) of one template string."""
    simple = _simple_references(source)
    if simple is not None:
        return simple, None
    errors = check_syntax(source)
    if errors:
        return (), errors[0]
    return tuple(references(source)), None


# ------------------------------------------------------------------ schema validation

_VALIDATORS: dict[int, tuple[dict, Draft202012Validator]] = {}


def _validator_for(schema: dict) -> Draft202012Validator:
    cached = _VALIDATORS.get(id(schema))
    if cached is None or cached[0] is not schema:
        cached = (schema, Draft202012Validator(schema))
        _VALIDATORS[id(schema)] = cached
    return cached[1]


def _ignorable(error: ValidationError) -> bool:
    """True when the error is only about a template string, whose value is not known
    before run time (``"seconds": "{{ input.wait }}"`` for a number), or when some branch of
    an anyOf/oneOf fails only that way."""
    if isinstance(error.instance, str) and is_template(error.instance):
        return True
    if error.validator in ("anyOf", "oneOf") and error.context:
        branches: dict[Any, list[ValidationError]] = {}
        for sub in error.context:
            branch = sub.relative_schema_path[0] if sub.relative_schema_path else None
            branches.setdefault(branch, []).append(sub)
        return any(all(_ignorable(sub) for sub in subs) for subs in branches.values())
    return False


_TEMPLATE_LITERAL = re.compile(r'"(?:[^"\\{]|\\.|\{(?![{%]))*\{[{%](?:[^"\\]|\\.)*"')
"""A JSON string literal containing ``{{`` or ``{%``."""

_encode = json.JSONEncoder(sort_keys=True, ensure_ascii=False).encode
_SchemaFindings = tuple[tuple[tuple[str, ...], str, str], ...]


def _schema_key(schema: dict, config: dict, prefix: tuple[str, ...]) -> tuple | None:
    """What the schema's verdict on `config` depends on: its JSON with every template
    string replaced by one placeholder (errors about a template string are ignored)."""
    try:
        text = _encode(config)
    except (TypeError, ValueError, RecursionError):
        return None
    return id(schema), prefix, _TEMPLATE_LITERAL.sub('"{{}}"', text)


def _schema_problems(schema: dict, config: dict, prefix: tuple[str, ...]) -> _SchemaFindings:
    """(path inside the config, message, code) for each schema error worth reporting.

    A missing required field gives ``missing_config`` naming the field, an unexpected field
    ``invalid_config`` naming it; `prefix` is prepended to field names in messages.
    """
    out: list[tuple[tuple[str, ...], str, str]] = []
    seen: set[tuple[tuple[str, ...], str]] = set()
    for error in _validator_for(schema).iter_errors(config):
        if _ignorable(error):
            continue
        path = tuple(str(p) for p in error.absolute_path)
        if error.validator == "required":
            if (path, "required") in seen:
                continue
            seen.add((path, "required"))
            for name in error.validator_value:
                if name not in error.instance:
                    field = _dotted((*prefix, *path, name))
                    out.append(
                        (
                            (*path, name),
                            f"Missing required config field '{field}'.",
                            "missing_config",
                        )
                    )
            continue
        if error.validator == "additionalProperties" and error.validator_value is False:
            if (path, "additionalProperties") in seen:
                continue
            seen.add((path, "additionalProperties"))
            known = error.schema.get("properties") or {}
            patterns = error.schema.get("patternProperties") or {}
            for name in error.instance:
                if name in known or any(re.search(p, str(name)) for p in patterns):
                    continue
                field = _dotted((*prefix, *path, str(name)))
                out.append(
                    ((*path, str(name)), f"Unknown config field '{field}'.", "invalid_config")
                )
            continue
        out.append((path, _schema_message(error, (*prefix, *path)), "invalid_config"))
    return tuple(out)


def _schema_message(error: ValidationError, path: tuple[str, ...]) -> str:
    where = f"Config field '{_dotted(path)}'" if path else "The config"
    if error.validator == "type":
        expected = error.validator_value
        if isinstance(expected, list):
            expected = " or ".join(str(t) for t in expected)
        return f"{where} must be of type {expected}, not {json_kind(error.instance)}."
    if error.validator == "enum":
        options = ", ".join(_short(v, 30) for v in error.validator_value)
        return f"{where} must be one of {options} (got {_short(error.instance)})."
    message = error.message
    if len(message) > 200:
        message = message[:197] + "..."
    return f"{where} is invalid: {message.rstrip('.')}."


# -------------------------------------------------------------------------- ancestry


class _Ancestry:
    """Answers "is `root` upstream of `node`?" for many pairs in near-linear time.

    Strongly connected components come from one iterative Tarjan pass (which also gives the
    cycles). A direct parent is answered from the adjacency; a node in the same cyclic
    component is upstream by definition. Every other root that is asked about gets a bit,
    and one pass over the components in topological order ORs the bits of each component's
    ancestors into a Python int: O((V + E) * R / 64) for R such roots, and R is 0 for the
    usual "read my parent" templates, however large the workflow.
    """

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.sccs = self._tarjan(graph)
        self.component = {n: i for i, comp in enumerate(self.sccs) for n in comp}
        self._parent_sets: dict[str, frozenset[str]] = {}
        self._bits: dict[str, int] = {}
        self._ancestors: list[int] | None = None

    @staticmethod
    def _tarjan(graph: Graph) -> list[list[str]]:
        """Strongly connected components, sinks first (reverse topological order)."""
        index: dict[str, int] = {}
        low: dict[str, int] = {}
        on_stack: set[str] = set()
        stack: list[str] = []
        sccs: list[list[str]] = []
        for start in graph.node_ids:
            if start in index:
                continue
            index[start] = low[start] = len(index)
            stack.append(start)
            on_stack.add(start)
            work = [(start, iter(graph.children(start)))]
            while work:
                node, children = work[-1]
                for child in children:
                    if child not in index:
                        index[child] = low[child] = len(index)
                        stack.append(child)
                        on_stack.add(child)
                        work.append((child, iter(graph.children(child))))
                        break
                    if child in on_stack and index[child] < low[node]:
                        low[node] = index[child]
                else:
                    work.pop()
                    if work:
                        parent = work[-1][0]
                        if low[node] < low[parent]:
                            low[parent] = low[node]
                    if low[node] == index[node]:
                        comp: list[str] = []
                        while True:
                            member = stack.pop()
                            on_stack.discard(member)
                            comp.append(member)
                            if member == node:
                                break
                        sccs.append(comp)
        return sccs

    def is_cyclic(self, comp: list[str]) -> bool:
        return len(comp) > 1 or comp[0] in self.graph.children(comp[0])

    def _is_parent(self, root: str, node: str) -> bool:
        parents = self.graph.parents(node)
        if len(parents) <= 8:
            return root in parents
        found = self._parent_sets.get(node)
        if found is None:
            found = self._parent_sets[node] = frozenset(parents)
        return root in found

    def _quick(self, root: str, node: str) -> bool | None:
        if root == node:
            return False
        if self._is_parent(root, node):
            return True
        if self.component[root] == self.component[node]:
            return True  # both on one cycle (reported as such)
        return None

    def prepare(self, pairs: list[tuple[str, str]]) -> None:
        """Register the (root, node) pairs that will be asked, before asking."""
        for root, node in pairs:
            if root not in self._bits and self._quick(root, node) is None:
                self._bits[root] = 1 << len(self._bits)
        self._ancestors = None

    def _compute(self) -> list[int]:
        own = [0] * len(self.sccs)
        for root, bit in self._bits.items():
            own[self.component[root]] |= bit
        ancestors = [0] * len(self.sccs)
        if not self._bits:
            return ancestors
        component = self.component
        # Tarjan emits a component after every component it reaches: walk them backwards.
        for ci in range(len(self.sccs) - 1, -1, -1):
            acc = 0
            for member in self.sccs[ci]:
                for parent in self.graph.parents(member):
                    cp = component[parent]
                    if cp != ci:
                        acc |= ancestors[cp] | own[cp]
            ancestors[ci] = acc
        return ancestors

    def is_upstream(self, root: str, node: str) -> bool:
        quick = self._quick(root, node)
        if quick is not None:
            return quick
        bit = self._bits.get(root)
        if bit is None:  # not prepared: fall back to a plain search
            return root in self.graph.upstream(node)
        if self._ancestors is None:
            self._ancestors = self._compute()
        return bool(self._ancestors[self.component[node]] & bit)

    def cycle_through(self, comp: list[str], start: str) -> list[str]:
        """A shortest cycle from `start` back to itself inside the component (BFS)."""
        if start in self.graph.children(start):
            return [start, start]
        members = set(comp)
        previous: dict[str, str] = {start: start}
        frontier = [start]
        while frontier:
            following: list[str] = []
            for node in frontier:
                for child in self.graph.children(node):
                    if child == start:
                        path = [node]
                        while path[-1] != start:
                            path.append(previous[path[-1]])
                        path.reverse()
                        return [*path, start]
                    if child in members and child not in previous:
                        previous[child] = node
                        following.append(child)
            frontier = following
        return [start, start]  # unreachable for a cyclic component


# ------------------------------------------------------------------------ validator


class _Ref(NamedTuple):
    """A reference to check once the graph is known: `root` must be upstream of `node`."""

    loc: tuple[str, ...]
    node_id: str
    path: str
    root: str
    what: str  # "template" or "expression"


class _Validator:
    def __init__(self, definition: Any, registry: Registry) -> None:
        self.definition = definition
        self.registry = registry
        self.head: list[Problem] = []
        # One entry list per node in the list (Problems and deferred _Refs), in order.
        self.node_entries: list[list[Problem | _Ref]] = []
        self.node_ids: dict[str, int] = {}  # id -> position of its first occurrence
        self.nodes: dict[str, dict] = {}  # id -> node (the last one, as Graph does)
        self.edge_problems: list[Problem] = []
        self.edges: list[tuple[int, str | None, Edge]] = []  # (index, id, edge) with both ends
        self.touching: set[str] = set()  # node ids that any edge names
        self.edge_ids: set[str] = set()
        self.schema_cache: dict[tuple, _SchemaFindings] = {}

    # -- driver

    def run(self) -> list[Problem]:
        definition = self.definition
        if not isinstance(definition, dict):
            return [
                Problem(
                    ("definition",),
                    f"The definition must be an object, not {json_kind(definition)}.",
                    code="shape",
                )
            ]
        nodes = self._list(definition, "nodes")
        edges = self._list(definition, "edges")
        for key in ("viewport", "settings"):
            value = definition.get(key)
            if value is not None and not isinstance(value, dict):
                self.head.append(
                    Problem(
                        ("definition", key),
                        f"'{key}' must be an object, not {json_kind(value)}.",
                        code="shape",
                    )
                )

        for index, raw in enumerate(nodes):
            self.node_entries.append(self._check_node(index, raw))
        for index, raw in enumerate(edges):
            self._check_edge(index, raw)

        graph = Graph(self.nodes, (edge for _, _, edge in self.edges))
        ancestry = _Ancestry(graph)
        self._check_graph(graph)
        cycles = self._cycles(ancestry)
        settings = self._check_settings(definition.get("settings"))

        refs = [
            (entry.root, entry.node_id)
            for entries in self.node_entries
            for entry in entries
            if isinstance(entry, _Ref) and entry.root in self.nodes
        ]
        ancestry.prepare(refs)

        problems = list(self.head)
        for entries in self.node_entries:
            for entry in entries:
                if isinstance(entry, Problem):
                    problems.append(entry)
                else:
                    problem = self._resolve(entry, ancestry)
                    if problem is not None:
                        problems.append(problem)
        problems.extend(self.edge_problems)
        problems.extend(cycles)
        problems.extend(settings)
        return problems

    def _list(self, definition: Mapping, key: str) -> list:
        value = definition.get(key)
        if isinstance(value, list):
            return value
        if value is None and key not in definition:
            msg = f"The definition has no '{key}' list."
        else:
            msg = f"'{key}' must be a list, not {json_kind(value)}."
        self.head.append(Problem(("definition", key), msg, code="shape"))
        return []

    # -- nodes

    def _check_node(self, index: int, raw: Any) -> list[Problem | _Ref]:
        out: list[Problem | _Ref] = []
        if not isinstance(raw, dict):
            out.append(
                Problem(
                    ("nodes", str(index)),
                    f"Node #{index} must be an object, not {json_kind(raw)}.",
                    code="shape",
                )
            )
            return out
        node_id = raw.get("id")
        if not isinstance(node_id, str) or not node_id:
            out.append(
                Problem(
                    ("nodes", str(index), "id"),
                    f"Node #{index} has no id: every node needs a string 'id'.",
                    code="shape",
                )
            )
            return out

        here = ("nodes", node_id)

        def problem(loc: tuple[str, ...], msg: str, code: str) -> None:
            out.append(Problem(here + loc, msg, node_id=node_id, code=code))

        if node_id in self.node_ids:
            problem(
                ("id",), f"Duplicate node id '{node_id}': node ids must be unique.", "duplicate_id"
            )
        else:
            self.node_ids[node_id] = index
        self.nodes[node_id] = raw
        if not NODE_ID_PATTERN.fullmatch(node_id):
            problem(
                ("id",),
                f"Node id {_short(node_id)} is not valid: use letters, digits and underscores, "
                "not starting with a digit, at most 100 characters (it is used in templates "
                "like {{ " + "step_id.field }}).",
                "invalid_id",
            )
        elif node_id in RESERVED_NAMES:
            problem(
                ("id",),
                f"Node id '{node_id}' is reserved (it means something else in templates); "
                "choose another id.",
                "invalid_id",
            )

        type_name = raw.get("type")
        step_type: StepType | None = None
        if not isinstance(type_name, str) or not type_name:
            problem(("type",), f"Node '{node_id}' has no step type.", "shape")
            type_name = ""
        else:
            step_type = self.registry.get(type_name)
            if step_type is None:
                problem(("type",), f"Unknown step type '{type_name}'.", "unknown_type")

        data = raw.get("data")
        if data is None:
            data = {}
        elif not isinstance(data, dict):
            problem(("data",), f"'data' must be an object, not {json_kind(data)}.", "shape")
            return out
        out.extend(self._check_policy(node_id, data))

        config = data.get("config")
        if config is None:
            config = {}
        elif not isinstance(config, dict):
            problem(
                ("data", "config"), f"'config' must be an object, not {json_kind(config)}.", "shape"
            )
            return out

        config_loc = (*here, "data", "config")
        if step_type is not None:
            out.extend(self._check_schema(node_id, step_type.config_schema, config, config_loc))
            out.extend(self._check_sub_step(node_id, step_type, config, config_loc))
        out.extend(self._check_expression(node_id, type_name, config, config_loc, _NO_NAMES))
        raw_keys = step_type.raw_config_keys if step_type is not None else _NO_NAMES
        if raw_keys.isdisjoint(config):
            out.extend(self._check_templates(node_id, config, config_loc, _NO_NAMES))
        else:
            for key, value in config.items():
                extra = _NO_NAMES
                if key in raw_keys:
                    scope = _RAW_TEMPLATE_SCOPES.get((type_name, key))
                    if scope is None:
                        continue
                    extra = scope
                out.extend(self._check_templates(node_id, value, (*config_loc, str(key)), extra))
        return out

    def _check_policy(self, node_id: str, data: dict) -> list[Problem]:
        out: list[Problem] = []
        if data.keys().isdisjoint(_POLICY_KEYS):
            return out

        def bad(key: str, msg: str) -> None:
            out.append(
                Problem(
                    ("nodes", node_id, "data", key), msg, node_id=node_id, code="invalid_policy"
                )
            )

        def choice(key: str, choices: tuple[str, ...]) -> None:
            if key in data and data[key] not in choices:
                got = _short(data[key])
                bad(key, f"'{key}' must be one of {', '.join(choices)} (got {got}).")

        if "label" in data and data["label"] is not None and not isinstance(data["label"], str):
            bad("label", f"'label' must be a string, not {json_kind(data['label'])}.")
        choice("on_error", ON_ERROR_CHOICES)
        if "max_attempts" in data:
            value = data["max_attempts"]
            if not _is_int(value) or not 1 <= value <= MAX_ATTEMPTS:
                bad(
                    "max_attempts",
                    f"'max_attempts' must be a whole number from 1 to {MAX_ATTEMPTS} "
                    f"(got {_short(value)}).",
                )
        choice("backoff_strategy", BACKOFF_CHOICES)
        if "backoff_base" in data:
            value = data["backoff_base"]
            if not _is_number(value) or not 0 <= value <= MAX_BACKOFF_BASE:
                bad(
                    "backoff_base",
                    f"'backoff_base' must be a number of seconds from 0 to {MAX_BACKOFF_BASE:g} "
                    f"(got {_short(value)}).",
                )
        if "timeout_seconds" in data:
            value = data["timeout_seconds"]
            if value is not None and (not _is_number(value) or value <= 0):
                bad(
                    "timeout_seconds",
                    f"'timeout_seconds' must be null or a number of seconds above 0 "
                    f"(got {_short(value)}).",
                )
        choice("join", JOIN_CHOICES)
        return out

    def _check_schema(
        self,
        node_id: str,
        schema: dict,
        config: dict,
        base: tuple[str, ...],
        prefix: tuple[str, ...] = (),
    ) -> list[Problem]:
        # Configs that differ only in their template strings (every step of a big workflow
        # reading its own parent) get the same answer: validate each shape once per call.
        key = _schema_key(schema, config, prefix)
        found = self.schema_cache.get(key) if key is not None else None
        if found is None:
            found = _schema_problems(schema, config, prefix)
            if key is not None:
                self.schema_cache[key] = found
        return [
            Problem((*base, *path), msg, node_id=node_id, code=code) for path, msg, code in found
        ]

    def _check_sub_step(
        self, node_id: str, step_type: StepType, config: Mapping, base: tuple[str, ...]
    ) -> list[Problem | _Ref]:
        """for_each: the sub-step's type must exist and not wait; its config is checked
        against that type's schema, its expression (if any) with ``item``/``index`` too."""
        if step_type.name != "for_each":
            return []
        sub_name = config.get("step_type")
        if not isinstance(sub_name, str) or not sub_name or is_template(sub_name):
            return []  # the schema reports a missing or mistyped step_type
        out: list[Problem | _Ref] = []
        sub = self.registry.get(sub_name)
        loc = (*base, "step_type")
        if sub is None:
            out.append(
                Problem(
                    loc, f"Unknown step type '{sub_name}'.", node_id=node_id, code="unknown_type"
                )
            )
            return out
        if sub.resume is not None or sub.wake is not None:
            out.append(
                Problem(
                    loc,
                    f"for_each cannot run '{sub_name}': a step that waits cannot run per item.",
                    node_id=node_id,
                    code="invalid_config",
                )
            )
            return out
        sub_config = config.get("step_config")
        if sub_config is None:
            sub_config = {}
        if isinstance(sub_config, dict):
            sub_base = (*base, "step_config")
            out.extend(
                self._check_schema(
                    node_id, sub.config_schema, sub_config, sub_base, ("step_config",)
                )
            )
            out.extend(
                self._check_expression(
                    node_id, sub_name, sub_config, sub_base, frozenset({"item", "index"})
                )
            )
        return out

    def _check_expression(
        self,
        node_id: str,
        type_name: str,
        config: Mapping,
        base: tuple[str, ...],
        extra: frozenset[str],
    ) -> list[Problem | _Ref]:
        field = EXPRESSION_FIELDS.get(type_name)
        if field is None:
            return []
        key, roots = field
        source = config.get(key)
        if not isinstance(source, str) or not source:
            return []  # absent, or a type error the schema reports
        loc = (*base, key)
        if is_template(source):
            if type_name == "condition":
                return []  # rendered first; its references are checked as a template
            return [
                Problem(
                    loc,
                    f"'{key}' is an expression, not a template: write it without {{{{ }}}}, "
                    "e.g. event.data.order_id == input.order_id.",
                    node_id=node_id,
                    code="expression",
                )
            ]
        try:
            expression = compile_expression(source)
        except ExpressionError as exc:
            return [
                Problem(
                    loc,
                    _sentence(f"Invalid expression in '{key}': {exc}"),
                    node_id=node_id,
                    code="expression",
                )
            ]
        allowed = roots | extra
        out: list[Problem | _Ref] = []
        for name in sorted(expression.names, key=lambda n: (source.find(n), n)):
            if name in allowed or name in FUNCTIONS:
                continue
            out.append(_Ref(loc, node_id, name, name, "expression"))
        return out

    def _check_templates(
        self, node_id: str, value: Any, base: tuple[str, ...], extra: frozenset[str]
    ) -> list[Problem | _Ref]:
        out: list[Problem | _Ref] = []
        for loc, source in _strings(value, base):
            refs, error = _analyse_template(source)
            if error is not None:
                out.append(
                    Problem(
                        loc,
                        _sentence(f"Invalid template in '{loc[-1]}': {error}"),
                        node_id=node_id,
                        code="template_syntax",
                    )
                )
                continue
            for path in refs:
                root = path.split(".", 1)[0]
                if root in CONTEXT_ROOTS or root in extra:
                    continue
                out.append(_Ref(loc, node_id, path, root, "template"))
        return out

    def _resolve(self, ref: _Ref, ancestry: _Ancestry) -> Problem | None:
        shown = "{{ " + ref.path + " }}" if ref.what == "template" else f"name '{ref.path}'"
        if ref.root not in self.nodes:
            msg = f"{shown} refers to '{ref.root}', but there is no such step."
            hint = _ROOT_HINTS.get(ref.root)
            if hint:
                msg = f"{msg[:-1]} ({hint})."
        elif ref.root == ref.node_id:
            msg = (
                f"{shown} refers to the step's own output; a step can only read steps "
                "upstream of it."
            )
        elif ancestry.is_upstream(ref.root, ref.node_id):
            return None
        else:
            msg = (
                f"{shown} refers to step '{ref.root}', which is not upstream of "
                f"'{ref.node_id}': connect '{ref.root}' before it."
            )
        return Problem(ref.loc, msg, node_id=ref.node_id, code="bad_reference")

    # -- edges

    def _check_edge(self, index: int, raw: Any) -> None:
        out = self.edge_problems
        if not isinstance(raw, dict):
            out.append(
                Problem(
                    ("edges", str(index)),
                    f"Edge #{index} must be an object, not {json_kind(raw)}.",
                    code="shape",
                )
            )
            return
        edge_id = raw.get("id")
        seen_ids = self.edge_ids
        if isinstance(edge_id, str) and edge_id:
            here: tuple[str, ...] = ("edges", edge_id)
            if edge_id in seen_ids:
                out.append(
                    Problem(
                        (*here, "id"),
                        f"Duplicate edge id '{edge_id}': edge ids must be unique.",
                        edge_id=edge_id,
                        code="duplicate_id",
                    )
                )
            seen_ids.add(edge_id)
            name = f"Edge '{edge_id}'"
        else:
            here = ("edges", str(index))
            edge_id = None
            out.append(
                Problem(
                    (*here, "id"),
                    f"Edge #{index} has no id: every edge needs a string 'id'.",
                    code="shape",
                )
            )
            name = f"Edge #{index}"

        ends: dict[str, str] = {}
        for key in ("source", "target"):
            value = raw.get(key)
            if not isinstance(value, str) or not value:
                out.append(
                    Problem(
                        (*here, key),
                        f"{name} has no {key}: '{key}' must be a node id.",
                        edge_id=edge_id,
                        code="shape",
                    )
                )
                continue
            self.touching.add(value)
            if value in self.nodes:
                ends[key] = value
            else:
                out.append(
                    Problem(
                        (*here, key),
                        f"{name} {'comes from' if key == 'source' else 'goes to'} "
                        f"{_short(value)}, but there is no such node.",
                        edge_id=edge_id,
                        code="dangling_edge",
                    )
                )
        handle = raw.get("sourceHandle")
        if handle is not None and not isinstance(handle, str):
            out.append(
                Problem(
                    (*here, "sourceHandle"),
                    f"{name}: 'sourceHandle' must be a string or null, not {json_kind(handle)}.",
                    edge_id=edge_id,
                    code="shape",
                )
            )
            handle = str(handle)
        if len(ends) == 2:
            edge = Edge(edge_id or f"#{index}", ends["source"], ends["target"], handle)
            self.edges.append((index, edge_id, edge))

    # -- graph-level checks

    def _check_graph(self, graph: Graph) -> None:
        """Condition branches and orphans, added to each node's first occurrence."""
        out_edges: dict[str, list[tuple[int, str | None, Edge]]] = {}
        for item in self.edges:
            out_edges.setdefault(item[2].source, []).append(item)
        several = len(self.node_ids) > 1
        for node_id, position in self.node_ids.items():
            entries = self.node_entries[position]
            if graph.node_type(node_id) == "condition":
                entries.extend(self._condition_branches(node_id, out_edges.get(node_id, [])))
            if several and node_id not in self.touching:
                entries.append(
                    Problem(
                        ("nodes", node_id),
                        f"Step '{node_id}' is not connected to any other step.",
                        node_id=node_id,
                        code="orphan",
                    )
                )

    @staticmethod
    def _condition_branches(
        node_id: str, edges: list[tuple[int, str | None, Edge]]
    ) -> list[Problem]:
        out: list[Problem] = []
        handles = {edge.handle for _, _, edge in edges}
        for branch in ("true", "false"):
            if branch not in handles:
                out.append(
                    Problem(
                        ("nodes", node_id),
                        f"Condition '{node_id}' has no '{branch}' branch: connect its "
                        f"'{branch}' handle to a step.",
                        node_id=node_id,
                        code="condition_branches",
                    )
                )
        for index, edge_id, edge in edges:
            if edge.handle in ("true", "false"):
                continue
            name = f"Edge '{edge_id}'" if edge_id else f"Edge #{index}"
            got = "no handle" if edge.handle is None else f"handle {edge.handle!r}"
            out.append(
                Problem(
                    ("edges", edge_id or str(index), "sourceHandle"),
                    f"{name} leaves condition '{node_id}' with {got}: a condition's edges "
                    "must use the 'true' or 'false' handle.",
                    node_id=node_id,
                    edge_id=edge_id,
                    code="condition_branches",
                )
            )
        return out

    def _cycles(self, ancestry: _Ancestry) -> list[Problem]:
        position = self.node_ids
        found: list[tuple[int, Problem]] = []
        for comp in ancestry.sccs:
            if not ancestry.is_cyclic(comp):
                continue
            ordered = sorted(comp, key=position.__getitem__)
            start = ordered[0]
            cycle = ancestry.cycle_through(comp, start)
            shown = cycle
            if len(cycle) > _MAX_CYCLE_SHOWN:
                hidden = len(cycle) - _MAX_CYCLE_SHOWN + 1
                shown = [*cycle[: _MAX_CYCLE_SHOWN - 3], f"… ({hidden} more)", *cycle[-2:]]
            msg = "Cycle: " + " → ".join(shown) + "."
            on_cycle = set(cycle)
            others = [n for n in ordered if n not in on_cycle]
            if others:
                listed = ", ".join(others[:10])
                if len(others) > 10:
                    listed += f" and {len(others) - 10} more"
                msg += f" The loop also goes through {listed}."
            found.append(
                (position[start], Problem(("nodes", start), msg, node_id=start, code="cycle"))
            )
        found.sort(key=lambda item: item[0])
        return [problem for _, problem in found]

    # -- settings

    @staticmethod
    def _check_settings(settings: Any) -> list[Problem]:
        if not isinstance(settings, dict):
            return []  # absent, or reported as a shape problem
        out: list[Problem] = []
        if "max_concurrency" in settings:
            value = settings["max_concurrency"]
            if not _is_int(value) or not 1 <= value <= MAX_CONCURRENCY:
                out.append(
                    Problem(
                        ("settings", "max_concurrency"),
                        f"'max_concurrency' must be a whole number from 1 to {MAX_CONCURRENCY} "
                        f"(got {_short(value)}).",
                        code="invalid_policy",
                    )
                )
        if "timeout_seconds" in settings:
            value = settings["timeout_seconds"]
            if value is not None and (not _is_number(value) or value <= 0):
                out.append(
                    Problem(
                        ("settings", "timeout_seconds"),
                        "'timeout_seconds' must be null or a number of seconds above 0 "
                        f"(got {_short(value)}).",
                        code="invalid_policy",
                    )
                )
        if "triggers" in settings:
            out.extend(_check_triggers(settings["triggers"]))
        out.extend(_check_flow_control(settings))
        return out


# -------------------------------------------------------------------------- triggers

CRON_ALIASES = frozenset(
    {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
)
"""Named schedules accepted in place of a cron expression."""


def cron_error(expression: Any) -> str | None:
    """Why `expression` is not a usable cron expression, or None when it is.

    Five fields (minute hour day month weekday), or six with seconds first, or one of
    `CRON_ALIASES`; it must also fire at least once (``0 0 30 2 *`` never does)."""
    if not isinstance(expression, str) or not expression.strip():
        return f"must be a cron expression such as '0 9 * * 1-5' (got {_short(expression)})"
    text = expression.strip()
    fields = text.split()
    if not (len(fields) in (5, 6) or (len(fields) == 1 and text.lower() in CRON_ALIASES)):
        return (
            "must have 5 fields (minute hour day month weekday), or 6 with seconds first "
            f"(got {len(fields)} in {_short(text)})"
        )
    try:
        croniter.expand(text, second_at_beginning=True)
        croniter(text, 0.0, second_at_beginning=True).get_next(float)
    except CroniterBadDateError:
        return f"{_short(text)} never fires"
    except (CroniterError, ValueError, TypeError, KeyError, IndexError) as exc:
        detail = str(exc).strip().rstrip(".") or "invalid syntax"
        return f"{_short(text)} is not a valid cron expression: {detail}"
    return None


@lru_cache(maxsize=1)
def _time_zones() -> frozenset[str]:
    return (frozenset(zoneinfo.available_timezones()) | {"UTC"}) - {"localtime", "posixrules"}


def timezone_error(name: Any) -> str | None:
    """Why `name` is not an IANA time zone name (``Europe/Berlin``, ``UTC``), or None."""
    if not isinstance(name, str) or name not in _time_zones():
        return f"must be an IANA time zone name such as 'Europe/Berlin' (got {_short(name)})"
    return None


FLOW_LIMIT_MAX = 100_000
"""The largest concurrency, rate-limit or throttle `limit`."""

_FLOW_FIELDS = {
    "concurrency": ("limit", "key"),
    "rate_limit": ("limit", "period_seconds", "key"),
    "throttle": ("limit", "period_seconds", "key"),
    "debounce": ("period_seconds", "key"),
}


def _check_flow_control(settings: dict) -> list[Problem]:
    """`settings.concurrency`, `rate_limit`, `throttle`, `debounce` and `priority`
    (runs/flowcontrol.py). Null or absent means off."""
    out: list[Problem] = []

    def bad(loc: tuple[str, ...], msg: str) -> None:
        out.append(Problem(("settings", *loc), _sentence(msg), code="invalid_policy"))

    for rule, fields in _FLOW_FIELDS.items():
        config = settings.get(rule)
        if config is None:
            continue
        if not isinstance(config, dict):
            bad(
                (rule,),
                f"'{rule}' must be an object with {', '.join(fields)} (got {json_kind(config)})",
            )
            continue
        for extra in sorted(set(config) - set(fields)):
            bad((rule, extra), f"'{rule}' has no field '{extra}' (it takes {', '.join(fields)})")
        if "limit" in fields:
            value = config.get("limit")
            if not _is_int(value) or not 1 <= value <= FLOW_LIMIT_MAX:
                bad(
                    (rule, "limit"),
                    f"'{rule}.limit' must be a whole number from 1 to {FLOW_LIMIT_MAX} "
                    f"(got {_short(value)})",
                )
        if "period_seconds" in fields:
            value = config.get("period_seconds")
            if not _is_number(value) or value <= 0:
                bad(
                    (rule, "period_seconds"),
                    f"'{rule}.period_seconds' must be a number of seconds above 0 "
                    f"(got {_short(value)})",
                )
        key = config.get("key")
        if key is not None:
            if not isinstance(key, str):
                bad((rule, "key"), f"'{rule}.key' must be a template string (got {json_kind(key)})")
            else:
                for error in check_syntax(key):
                    bad((rule, "key"), f"'{rule}.key' is not a valid template: {error}")
    if "priority" in settings:
        value = settings["priority"]
        if isinstance(value, str):
            for error in check_syntax(value):
                bad(("priority",), f"'priority' is not a valid template: {error}")
        elif value is not None and not _is_int(value):
            bad(
                ("priority",),
                f"'priority' must be a whole number or a template (got {_short(value)})",
            )
    return out


def _check_triggers(triggers: Any) -> list[Problem]:
    """`settings.triggers`: each trigger's shape, for the types the server knows (webhook,
    schedule, event). Other types are left alone (kept for later features)."""
    if triggers is None:
        return []
    if not isinstance(triggers, list):
        return [
            Problem(
                ("settings", "triggers"),
                f"'triggers' must be a list of trigger objects (got {json_kind(triggers)}).",
                code="invalid_trigger",
            )
        ]
    out: list[Problem] = []
    webhooks = 0

    def bad(index: int, field: str | None, msg: str) -> None:
        loc = ("settings", "triggers", str(index)) + ((field,) if field else ())
        out.append(Problem(loc, _sentence(msg), code="invalid_trigger"))

    for index, trigger in enumerate(triggers):
        where = f"Trigger {index + 1}"
        if not isinstance(trigger, dict):
            bad(index, None, f"{where} must be an object (got {json_kind(trigger)})")
            continue
        kind = trigger.get("type")
        if not isinstance(kind, str) or not kind:
            bad(index, "type", f"{where} needs a 'type': webhook, schedule or event")
        elif kind == "schedule":
            problem = cron_error(trigger.get("cron"))
            if problem:
                bad(index, "cron", f"{where}: 'cron' {problem}")
            if "timezone" in trigger:
                problem = timezone_error(trigger["timezone"])
                if problem:
                    bad(index, "timezone", f"{where}: 'timezone' {problem}")
            if "catch_up" in trigger and not isinstance(trigger["catch_up"], bool):
                bad(
                    index,
                    "catch_up",
                    f"{where}: 'catch_up' must be true or false "
                    f"(got {_short(trigger['catch_up'])})",
                )
            if "input" in trigger and not isinstance(trigger["input"], dict):
                bad(
                    index,
                    "input",
                    f"{where}: 'input' must be an object (got {json_kind(trigger['input'])})",
                )
        elif kind == "webhook":
            webhooks += 1
            if webhooks > 1:
                bad(index, "type", f"{where}: a workflow has one webhook URL: one webhook trigger")
            secret = trigger.get("secret")
            if (
                "secret" in trigger
                and secret is not None
                and (not isinstance(secret, str) or not secret)
            ):
                bad(
                    index,
                    "secret",
                    f"{where}: 'secret' must be a non-empty string (got {json_kind(secret)})",
                )
        elif kind == "event":
            name = trigger.get("event")
            if not isinstance(name, str) or not name.strip():
                bad(index, "event", f"{where}: 'event' must be the event's name")
            condition = trigger.get("filter")
            if condition is not None:
                if not isinstance(condition, str):
                    bad(index, "filter", f"{where}: 'filter' must be an expression string")
                else:
                    try:
                        compile_expression(condition)
                    except ExpressionError as exc:
                        bad(index, "filter", f"{where}: 'filter' is invalid: {exc}")
    return out
