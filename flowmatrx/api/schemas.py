"""Request and response shapes. Requests forbid unknown fields; responses are documented
in full so the OpenAPI document describes every answer (errors included)."""

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from ninja import Header, Schema
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    field_validator,
)

from engine.statuses import RunStatus, StepStatus, TriggerType, WorkflowStatus
from workflows.models import empty_definition

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
StepId = Annotated[str, StringConstraints(min_length=1, max_length=200)]
EventName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Identifier = Annotated[str, StringConstraints(min_length=1, max_length=255)]

IdempotencyKey = Annotated[
    str | None,
    Header(
        None,
        alias="X-Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="Any printable ASCII string. The same key (per user and endpoint) with the "
        "same request returns the first response and creates nothing new; with a different "
        "request it answers 422.",
    ),
]


# ------------------------------------------------------------------------------ errors


class ErrorItem(Schema):
    model_config = ConfigDict(extra="allow")

    loc: list[str | int] = Field(description='Where: ["body", "name"], ["query", "limit"], ...')
    msg: str


class DefinitionProblem(ErrorItem):
    """A validation problem of a definition, tied to the node or edge it is about."""

    node_id: str | None = None
    edge_id: str | None = None
    code: str | None = None


class ErrorOut(Schema):
    errors: list[ErrorItem]
    detail: str | None = None


def error_responses(*codes: int) -> dict[int, type]:
    """The error part of an operation's `response=`: 401 and 403 always, plus `codes`."""
    return {code: ErrorOut for code in sorted({401, 403, *codes})}


BODY_ERRORS = (400, 413, 422)


# ---------------------------------------------------------------------------- requests


class Strict(BaseModel):
    """A request body: unknown fields and loose types ("3" for 3, 1 for true) are refused."""

    model_config = ConfigDict(extra="forbid", strict=True)


class Definition(BaseModel):
    """The canvas document, stored verbatim (SPEC §2). Only its outline is checked here;
    everything else is reported by validation, as `errors` on the workflow."""

    model_config = ConfigDict(extra="allow", strict=True)

    nodes: list[Any]
    edges: list[Any]
    viewport: dict[str, Any] = Field(default_factory=dict)
    settings: dict[str, Any] = Field(default_factory=dict)

    def document(self) -> dict:
        return self.model_dump(mode="json", exclude_unset=True)


def _check_input_schema(value: dict | None) -> dict | None:
    if value is not None:
        try:
            Draft202012Validator.check_schema(value)
        except SchemaError as exc:
            path = "/".join(str(p) for p in exc.absolute_path)
            raise ValueError(f"not a valid JSON Schema: {exc.message} (at /{path})") from None
    return value


class WorkflowCreateIn(Strict):
    name: Name
    description: str = Field("", max_length=10_000)
    definition: Definition = Field(
        default_factory=lambda: Definition.model_validate(empty_definition())
    )
    input_schema: dict[str, Any] | None = Field(
        None, description="JSON Schema (2020-12) that a run's input must satisfy."
    )

    _input_schema = field_validator("input_schema")(_check_input_schema)


class WorkflowUpdateIn(Strict):
    """Fields left out keep their value."""

    name: Name = None
    description: str = Field(None, max_length=10_000)
    definition: Definition = None
    input_schema: dict[str, Any] | None = None

    _input_schema = field_validator("input_schema")(_check_input_schema)


class DuplicateIn(Strict):
    name: Name = Field(None, description='Default: "<name> (copy)".')


class RunCreateIn(Strict):
    input: dict[str, Any] = Field(default_factory=dict)
    max_concurrency: int | None = Field(None, ge=1, le=1000)


class ResumeIn(Strict):
    step_id: StepId
    data: dict[str, Any] = Field(
        default_factory=dict,
        description='For an approval {"approved": bool, "comment"?}; for an event '
        '{"name"?, "data"?, "id"?}.',
    )


class ApprovalData(Strict):
    approved: StrictBool
    comment: str | None = Field(None, max_length=10_000)


class EventIn(Strict):
    name: EventName
    data: Any = None
    id: Identifier | None = Field(
        None, description="The sender's id: an id seen before does nothing twice."
    )


# --------------------------------------------------------------------------- responses


class WorkflowOut(Schema):
    id: UUID
    lineage_id: UUID = Field(description="Shared by every version of this workflow.")
    name: str
    description: str
    version: int
    status: WorkflowStatus
    definition: dict[str, Any]
    input_schema: dict[str, Any] | None
    created_by: str | None
    created_at: datetime
    updated_at: datetime
    published_at: datetime | None
    errors: list[DefinitionProblem] | None = Field(
        description="Validation problems of the definition (null in lists)."
    )
    webhook_url: str | None = Field(
        description="`POST` here to start a run (the same for every version); null when "
        "this version has no webhook trigger or the caller may not start runs (the URL "
        "is a credential: viewers and keys without the run scope do not see it).",
    )


class WorkflowPage(Schema):
    items: list[WorkflowOut]
    next_cursor: str | None


class WorkflowStateOut(Schema):
    lineage_id: UUID
    state: dict[str, Any] = Field(
        description="Key → value, written by set_state steps, read as {{ state.key }}."
    )


class ValidationOut(Schema):
    valid: bool
    errors: list[DefinitionProblem]


class DiffNode(Schema):
    id: str
    type: str
    label: str


class DiffNodeChange(DiffNode):
    fields: list[str] = Field(description="Which of type, label, config, data changed.")
    config_keys: list[str] = Field(description="Config keys added, removed or changed.")
    data_keys: list[str] = Field(description="Other data keys added, removed or changed.")
    moved: bool = Field(description="The position changed too.")


class DiffNodeMove(DiffNode):
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class DiffEdge(Schema):
    id: str
    source: str
    target: str
    source_handle: str | None


class DiffEdgeChange(Schema):
    id: str
    fields: list[str] = Field(description="Which of source, target, source_handle changed.")
    before: DiffEdge
    after: DiffEdge


class DiffNodes(Schema):
    added: list[DiffNode]
    removed: list[DiffNode]
    changed: list[DiffNodeChange]
    moved: list[DiffNodeMove] = Field(description="Nodes whose only change is their position.")


class DiffEdges(Schema):
    added: list[DiffEdge]
    removed: list[DiffEdge]
    changed: list[DiffEdgeChange]


class DiffOut(Schema):
    workflow_id: UUID = Field(description="The version compared from.")
    other_id: UUID = Field(description="The version compared to.")
    from_version: int
    to_version: int
    nodes: DiffNodes
    edges: DiffEdges
    settings: list[str] = Field(description="Settings keys added, removed or changed.")
    identical: bool


class RunOut(Schema):
    id: UUID
    workflow_id: UUID
    workflow_version: int
    lineage_id: UUID
    workflow_name: str
    status: RunStatus
    trigger_type: TriggerType
    input: dict[str, Any]
    context: dict[str, Any]
    error: str
    idempotency_key: str | None
    parent_run_id: UUID | None = Field(
        description="The run whose invoke_workflow step started this one."
    )
    parent_step_id: str | None
    max_concurrency: int
    priority: int
    created_by: str | None
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    duration_ms: int | None


class RunPage(Schema):
    items: list[RunOut]
    next_cursor: str | None


class StepRunOut(Schema):
    id: int
    run_id: UUID
    step_id: str
    step_type: str
    status: StepStatus
    input: Any = Field(description="The resolved config.")
    output: Any
    error: str
    attempt: int
    waiting_for: str
    wake_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    duration_ms: int | None


class StepRunPage(Schema):
    items: list[StepRunOut]
    next_cursor: str | None


class RunEventOut(Schema):
    id: int
    run_id: UUID
    seq: int
    event_type: str
    step_id: str | None
    payload: dict[str, Any]
    created_at: datetime


class RunEventPage(Schema):
    items: list[RunEventOut]
    next_cursor: str | None = Field(description="The last seq sent: pass as ?cursor= or ?after=.")


class EventOut(Schema):
    id: UUID
    name: str
    event_id: str | None
    data: Any
    received_at: datetime
    created_by: str | None
    resumed_run_ids: list[UUID]
    started_run_ids: list[UUID]
    duplicate: bool = Field(description="True when the id had been delivered before.")


class EventPage(Schema):
    items: list[EventOut]
    next_cursor: str | None


class StepTypeOut(Schema):
    model_config = ConfigDict(extra="allow")

    type: str
    label: str
    category: str
    description: str
    icon: str
    config_schema: dict[str, Any]
    node_schema: dict[str, Any]
    waits: bool


class StepTypeList(Schema):
    items: list[StepTypeOut]
    next_cursor: str | None = None


class FunctionOut(Schema):
    model_config = ConfigDict(extra="allow")

    name: str
    label: str
    description: str
    input_schema: dict[str, Any] | None
    output_schema: dict[str, Any] | None


class FunctionList(Schema):
    items: list[FunctionOut]
    next_cursor: str | None = None
