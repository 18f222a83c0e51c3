"""inline_code end to end: a run whose Python step reads the input and an earlier step."""

import shutil

import pytest

from engine.handlers import inline_code  # noqa: F401  (registers the step type)
from engine.statuses import RunStatus
from runs.tests.conftest import edge, node

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap")


def test_a_run_executes_python_in_the_sandbox(make_run, drive):
    code = "print('total', input['n'])\nresult = {'double': input['n'] * 2, 'x': context['a']['x']}"
    run = make_run(
        [
            node("a", "transform", {"mapping": {"x": "{{ input.n }}"}}),
            node("b", "inline_code", {"code": code}),
        ],
        [edge("a", "b")],
        input={"n": 21},
    )
    run = drive(run)

    assert run.status == RunStatus.COMPLETED
    assert run.context["b"] == {"result": {"double": 42, "x": 21}, "stdout": "total 21\n"}


def test_an_exception_in_the_code_fails_the_run_without_retrying(make_run, drive):
    run = make_run([node("a", "inline_code", {"code": "1 / 0"}, max_attempts=3)])
    run = drive(run)

    assert run.status == RunStatus.FAILED
    step = run.steps.get(step_id="a")
    assert step.attempt == 1 and "ZeroDivisionError: division by zero" in step.error
