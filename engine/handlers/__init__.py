"""Built-in step types, one module each. Importing this package registers them all."""

from engine.handlers import (  # noqa: F401
    condition,
    database_query,
    delay,
    for_each,
    function_call,
    http_request,
    inline_code,
    llm_call,
    send_email,
    transform,
    wait_for_approval,
    wait_for_event,
    webhook,
)
