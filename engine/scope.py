"""What a step sees: the run context as it stood when the step started, plus `run` and
`state`."""

from collections.abc import Iterator, Mapping
from itertools import islice
from typing import Any

_EMPTY: dict = {}


class Scope(Mapping):
    """A read-only view of the first `size` keys of the run context, plus `run` metadata
    and the workflow's persistent `state`.

    The context only ever gains keys (one per finished step), so "the context when the
    step started" is its first `size` keys: the view costs O(1) to make however large the
    context is, where a copy per step made long runs quadratic. Keys added later (a
    parallel branch finishing while this step runs) are not visible through it. `state`
    is the snapshot the executor held when the step started (it replaces, never mutates,
    its snapshot when a set_state step writes).
    """

    __slots__ = ("_context", "_order", "_run", "_size", "_state")

    def __init__(
        self, context: dict, order: dict[str, int], run: dict, state: dict = _EMPTY
    ) -> None:
        self._context = context
        self._order = order
        self._size = len(order)
        self._run = run
        self._state = state

    def __getitem__(self, key: str) -> Any:
        if key == "run":
            return self._run
        if key == "state":
            return self._state
        if self._order.get(key, self._size) < self._size:
            return self._context[key]
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        yield from list(islice(self._context, self._size))
        yield "run"
        yield "state"

    def __len__(self) -> int:
        return self._size + 2
