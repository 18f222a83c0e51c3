"""Per-node execution policy read from a node's `data` (SPEC §2)."""

from dataclasses import dataclass
from typing import Literal

MAX_BACKOFF_SECONDS = 300.0

OnError = Literal["fail", "skip", "continue"]
BackoffStrategy = Literal["fixed", "linear", "exponential"]
ON_ERROR_CHOICES = ("fail", "skip", "continue")
BACKOFF_CHOICES = ("fixed", "linear", "exponential")
JOIN_CHOICES = ("all", "any")


@dataclass(frozen=True, slots=True)
class StepPolicy:
    max_attempts: int = 1
    """Attempts including the first; at least 1."""
    backoff_strategy: BackoffStrategy = "fixed"
    """fixed: base; linear: base × attempt; exponential: base ^ attempt."""
    backoff_base: float = 2.0
    """Seconds."""
    timeout_seconds: float | None = None
    """Limit for one attempt; None for no limit."""
    on_error: OnError = "fail"
    """fail: the run fails; skip: the step is marked skipped; continue: downstream runs and
    sees `{"_error": message}` as the step's output."""

    @classmethod
    def from_node(cls, node: dict) -> "StepPolicy":
        """Read the policy, falling back to defaults for values that validation rejects."""
        data = node.get("data") or {}
        attempts = data.get("max_attempts", 1)
        base = data.get("backoff_base", 2.0)
        timeout = data.get("timeout_seconds")
        strategy = data.get("backoff_strategy", "fixed")
        on_error = data.get("on_error", "fail")
        return cls(
            max_attempts=attempts if _is_int(attempts) and attempts >= 1 else 1,
            backoff_strategy=strategy if strategy in BACKOFF_CHOICES else "fixed",
            backoff_base=float(base) if _is_number(base) and base >= 0 else 2.0,
            timeout_seconds=float(timeout) if _is_number(timeout) and timeout > 0 else None,
            on_error=on_error if on_error in ON_ERROR_CHOICES else "fail",
        )

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based), capped at 300."""
        if self.backoff_strategy == "linear":
            delay = self.backoff_base * attempt
        elif self.backoff_strategy == "exponential":
            try:
                delay = self.backoff_base**attempt
            except OverflowError:
                delay = MAX_BACKOFF_SECONDS
        else:
            delay = self.backoff_base
        return min(float(delay), MAX_BACKOFF_SECONDS)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
