"""Built-in step types, one module each. Importing this package registers them all."""

from engine.handlers import (  # noqa: F401
    condition,
    database_query,
    delay,
    for_each,
    function_call,
    http_request,
    inline_code,
    invoke_workflow,
    llm_call,
    send_email,
    send_event,
    set_state,
    transform,
    wait_for_approval,
    wait_for_event,
    webhook,
)
