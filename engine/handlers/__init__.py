"""Built-in step types, one module each. Importing this package registers them all."""

from engine.handlers import (  # noqa: F401
    condition,
    delay,
    for_each,
    transform,
    wait_for_approval,
    wait_for_event,
)
