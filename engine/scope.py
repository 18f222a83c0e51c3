"""What a step sees: the run context as it stood when the step started, plus `run`."""

from collections.abc import Iterator, Mapping
from itertools import islice
from typing import Any


class Scope(Mapping):
    """A read-only view of the first `size` keys of the run context, plus `run` metadata.

    The context only ever gains keys (one per finished step), so "the context when the
    step started" is its first `size` keys: the view costs O(1) to make however large the
    context is, where a copy per step made long runs quadratic. Keys added later (a
    parallel branch finishing while this step runs) are not visible through it.
    """

    __slots__ = ("_context", "_order", "_run", "_size")

    def __init__(self, context: dict, order: dict[str, int], run: dict) -> None:
        self._context = context
        self._order = order
        self._size = len(order)
        self._run = run

    def __getitem__(self, key: str) -> Any:
        if key == "run":
            return self._run
        if self._order.get(key, self._size) < self._size:
            return self._context[key]
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        yield from list(islice(self._context, self._size))
        yield "run"

    def __len__(self) -> int:
        return self._size + 1
