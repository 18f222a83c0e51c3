"""/catalog: the step types and functions a definition can use (what the builder's palette
shows)."""

from ninja import Router

from engine.catalog import function_catalog, step_catalog
from flowmatrx.api.schemas import FunctionList, StepTypeList, error_responses

router = Router(tags=["catalog"])


@router.get("/catalog/steps", response={200: StepTypeList, **error_responses()})
def list_step_types(request):
    """Every step type with its config schema and node schema, by category."""
    return {"items": step_catalog(), "next_cursor": None}


@router.get("/catalog/functions", response={200: FunctionList, **error_responses()})
def list_functions(request):
    """Every function a function_call step can call."""
    return {"items": function_catalog(), "next_cursor": None}
