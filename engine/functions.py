"""The function registry: named async Python callables that `function_call` steps run.

A function is `async def f(args, context) -> dict`, pure like a step handler: `args` is the
step's rendered `args` object (checked against the function's `input_schema` before the
call) and `context` the read-only run context. Register one with the decorator::

    @register_function("text.reverse", description="Reverse a string.",
                       input_schema={"type": "object", "required": ["text"],
                                     "properties": {"text": {"type": "string"}}})
    async def reverse(args, context):
        return {"text": args["text"][::-1]}

or list dotted paths in `settings.FLOWMATRX_FUNCTIONS` (a module, whose decorated functions
register when it is imported, or a single async callable, registered under its
`__name__`) and call `load_configured_functions()`.
"""

import inspect
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from importlib import import_module
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, best_match

from engine.errors import NonRetryableError, RegistryError

Function = Callable[[dict, Mapping[str, Any]], Awaitable[dict]]

NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
MAX_NAME_LENGTH = 100
ANY_OBJECT = {"type": "object"}


@dataclass(frozen=True)
class RegisteredFunction:
    name: str
    func: Function
    label: str
    description: str
    input_schema: dict
    output_schema: dict

    def catalog_entry(self) -> dict:
        return {
            "name": self.name,
            "label": self.label,
            "description": self.description,
            "input_schema": self.input_schema,
            "output_schema": self.output_schema,
        }

    def check_args(self, args: Any) -> None:
        """Raise a NonRetryableError naming the field when `args` breaks the input schema."""
        error = best_match(Draft202012Validator(self.input_schema).iter_errors(args))
        if error is not None:
            where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.path)
            raise NonRetryableError(f"function '{self.name}': args{where}: {error.message}")

    async def call(self, args: Any, context: Mapping[str, Any]) -> dict:
        self.check_args(args)
        result = await self.func(args, context)
        if not isinstance(result, dict):
            raise NonRetryableError(
                f"function '{self.name}' returned {type(result).__name__}, not an object"
            )
        return result


class FunctionRegistry:
    def __init__(self):
        self._functions: dict[str, RegisteredFunction] = {}

    def register(self, entry: RegisteredFunction) -> RegisteredFunction:
        if entry.name in self._functions:
            raise RegistryError(f"function {entry.name!r} is already registered")
        self._functions[entry.name] = entry
        return entry

    def get(self, name: str) -> RegisteredFunction | None:
        return self._functions.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._functions

    def names(self) -> list[str]:
        return sorted(self._functions)

    def all(self) -> list[RegisteredFunction]:
        return [self._functions[name] for name in self.names()]

    def find(self, func: object) -> RegisteredFunction | None:
        """The entry registered for this very callable, if any."""
        return next((f for f in self._functions.values() if f.func is func), None)


functions = FunctionRegistry()


def _is_async(func: object) -> bool:
    return inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(
        getattr(func, "__call__", None)  # noqa: B004  (an instance with an async __call__)
    )


def _check_schema(name: str, which: str, schema: object) -> dict:
    if schema is None:
        return dict(ANY_OBJECT)
    if not isinstance(schema, dict) or schema.get("type") != "object":
        raise RegistryError(f"function {name!r}: {which} must be an object schema")
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise RegistryError(f"function {name!r}: {which} is invalid: {exc.message}") from None
    return schema


def make_entry(
    func: object,
    name: str | None = None,
    *,
    description: str = "",
    input_schema: dict | None = None,
    output_schema: dict | None = None,
    label: str | None = None,
) -> RegisteredFunction:
    """Check a callable and its metadata; raise RegistryError saying what is wrong."""
    if not callable(func):
        raise RegistryError(f"function {name or func!r} is not callable")
    name = name if name is not None else getattr(func, "__name__", None)
    if not isinstance(name, str) or len(name) > MAX_NAME_LENGTH or not NAME_PATTERN.fullmatch(name):
        raise RegistryError(
            f"function name {name!r} must be identifiers joined by dots, like 'text.slugify'"
        )
    if not _is_async(func):
        raise RegistryError(f"function {name!r} must be an async function (async def)")
    try:
        inspect.signature(func).bind(None, None)
    except (TypeError, ValueError):
        raise RegistryError(f"function {name!r} must take (args, context)") from None
    if not description:
        description = inspect.cleandoc(func.__doc__ or "").split("\n\n")[0].replace("\n", " ")
    return RegisteredFunction(
        name=name,
        func=func,
        label=label or name.rsplit(".", 1)[-1].replace("_", " ").capitalize(),
        description=description,
        input_schema=_check_schema(name, "input_schema", input_schema),
        output_schema=_check_schema(name, "output_schema", output_schema),
    )


def register_function(name=None, **metadata):
    """Decorator registering an async `f(args, context) -> dict` in the global registry.

    Use it bare (`@register_function`, named after the function) or with arguments:
    `@register_function(name=None, *, description="", input_schema=None,
    output_schema=None, label=None)`.
    """
    if callable(name):  # bare @register_function
        functions.register(make_entry(name))
        return name

    def decorate(func):
        functions.register(make_entry(func, name, **metadata))
        return func

    return decorate


_loaded_paths: set[str] = set()


def _import_error(path: str, exc: Exception) -> RegistryError:
    return RegistryError(f"cannot import function path {path!r}: {type(exc).__name__}: {exc}")


def _import_path(path: str) -> None:
    try:
        import_module(path)
        return
    except ModuleNotFoundError as exc:
        if exc.name != path or "." not in path:  # not "a callable inside a module"
            raise _import_error(path, exc) from exc
    except RegistryError:
        raise
    except Exception as exc:  # the module itself is broken
        raise _import_error(path, exc) from exc
    module_path, attribute = path.rsplit(".", 1)
    try:
        module = import_module(module_path)
    except RegistryError:
        raise
    except Exception as exc:
        raise _import_error(path, exc) from exc
    func = getattr(module, attribute, None)
    if func is None:
        raise RegistryError(
            f"cannot import function path {path!r}: it is neither a module nor "
            f"an attribute of {module_path!r}"
        )
    if functions.find(func) is None:  # a decorated function registered on import already
        functions.register(make_entry(func))


def load_configured_functions(paths: list[str] | None = None) -> list[str]:
    """Import each dotted path of `settings.FLOWMATRX_FUNCTIONS` (or `paths`) once; return
    the names of all registered functions. Safe to call repeatedly."""
    from django.conf import settings

    if paths is None:
        paths = getattr(settings, "FLOWMATRX_FUNCTIONS", None) or []
    for path in paths:
        if not isinstance(path, str) or not path:
            raise RegistryError(f"function path {path!r} must be a dotted path")
        if path not in _loaded_paths:
            _import_path(path)
            _loaded_paths.add(path)
    return functions.names()


from engine import builtin_functions  # noqa: E402, F401  (the built-ins are always there)
