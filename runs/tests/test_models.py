import pytest
from django.db import IntegrityError, connection, transaction

from engine.statuses import EventType, RunStatus, StepStatus, TriggerType, WorkflowStatus
from runs.models import AppendOnlyError, Run, RunEvent, StepRun
from workflows.models import Workflow


@pytest.fixture
def run(workflow):
    return Run.objects.create(workflow=workflow, input={"name": "Ada"})


def test_it_numbers_events_uniquely_per_run(run):
    RunEvent.objects.create(run=run, seq=1, event_type=EventType.RUN_STARTED)
    with pytest.raises(IntegrityError), transaction.atomic():
        RunEvent.objects.create(run=run, seq=1, event_type=EventType.RUN_COMPLETED)


def test_it_allows_the_same_seq_in_another_run(run, workflow):
    other = Run.objects.create(workflow=workflow)
    RunEvent.objects.create(run=run, seq=1, event_type=EventType.RUN_STARTED)
    RunEvent.objects.create(run=other, seq=1, event_type=EventType.RUN_STARTED)
    assert RunEvent.objects.filter(seq=1).count() == 2


def test_it_keeps_step_attempts_unique(run):
    StepRun.objects.create(run=run, step_id="a", step_type="transform", attempt=1)
    StepRun.objects.create(run=run, step_id="a", step_type="transform", attempt=2)
    with pytest.raises(IntegrityError), transaction.atomic():
        StepRun.objects.create(run=run, step_id="a", step_type="transform", attempt=2)


def test_the_model_refuses_to_change_or_delete_an_event(run):
    event = RunEvent.objects.create(run=run, seq=1, event_type=EventType.RUN_STARTED)
    event.payload = {"tampered": True}
    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()
    with pytest.raises(AppendOnlyError):
        RunEvent.objects.filter(run=run).update(payload={})
    with pytest.raises(AppendOnlyError):
        RunEvent.objects.filter(run=run).delete()
    assert RunEvent.objects.get(pk=event.pk).payload == {}


@pytest.mark.postgres
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE runs_runevent SET payload = '{}'::jsonb WHERE id = %s",
        "UPDATE runs_runevent SET seq = 99 WHERE id = %s",
        "DELETE FROM runs_runevent WHERE id = %s",
    ],
)
def test_the_database_refuses_to_change_or_delete_an_event(run, statement):
    event = RunEvent.objects.create(
        run=run, seq=1, event_type=EventType.RUN_STARTED, payload={"status": "running"}
    )
    with (
        pytest.raises(Exception, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(statement, [event.pk])
    stored = RunEvent.objects.get(pk=event.pk)
    assert (stored.seq, stored.payload) == (1, {"status": "running"})


def test_a_purge_removes_a_whole_run_with_its_log(run, workflow):
    kept = Run.objects.create(workflow=workflow)
    RunEvent.objects.create(run=run, seq=1, event_type=EventType.RUN_STARTED)
    RunEvent.objects.create(run=kept, seq=1, event_type=EventType.RUN_STARTED)
    StepRun.objects.create(run=run, step_id="a", step_type="transform")

    assert Run.objects.filter(pk=run.pk).purge() == 1

    assert not Run.objects.filter(pk=run.pk).exists()
    assert list(RunEvent.objects.values_list("run_id", flat=True)) == [kept.pk]


@pytest.mark.parametrize("status", list(RunStatus))
def test_run_statuses_round_trip(workflow, status):
    run = Run.objects.create(workflow=workflow, status=status)
    assert Run.objects.get(pk=run.pk).status == status
    assert RunStatus(Run.objects.get(pk=run.pk).status) is status


@pytest.mark.parametrize("status", list(StepStatus))
def test_step_statuses_round_trip(run, status):
    step = StepRun.objects.create(run=run, step_id="a", step_type="delay", status=status)
    assert StepStatus(StepRun.objects.get(pk=step.pk).status) is status


@pytest.mark.parametrize("trigger", list(TriggerType))
def test_trigger_types_round_trip(workflow, trigger):
    run = Run.objects.create(workflow=workflow, trigger_type=trigger)
    assert TriggerType(Run.objects.get(pk=run.pk).trigger_type) is trigger


@pytest.mark.parametrize("status", list(WorkflowStatus))
def test_workflow_statuses_round_trip(alice, status):
    wf = Workflow.objects.create(name="W", status=status, created_by=alice)
    assert WorkflowStatus(Workflow.objects.get(pk=wf.pk).status) is status


def test_the_event_envelope_has_the_spec_shape(run):
    event = RunEvent.objects.create(
        run=run, seq=1, event_type=EventType.STEP_STARTED, step_id="a", payload={"attempt": 1}
    )
    envelope = event.envelope()
    assert set(envelope) == {"seq", "event_type", "run_id", "step_id", "timestamp", "payload"}
    assert envelope["run_id"] == str(run.pk)
    assert envelope["timestamp"].endswith("Z")


def test_status_counts_cover_every_status(workflow):
    Run.objects.create(workflow=workflow, status=RunStatus.FAILED)
    Run.objects.create(workflow=workflow, status=RunStatus.FAILED)
    counts = Run.objects.status_counts()
    assert counts["failed"] == 2
    assert counts["completed"] == 0
    assert set(counts) == {s.value for s in RunStatus}
