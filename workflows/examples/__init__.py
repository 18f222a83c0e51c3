"""The example workflows (one JSON file each: name, description, definition) and their
loader: `python manage.py load_examples`, and `manage.py serve` on the first start of an
empty installation."""

import json
from pathlib import Path

from django.db import transaction

from runs.models import Run
from workflows.models import Workflow

EXAMPLES_DIR = Path(__file__).resolve().parent


def example_files() -> list[Path]:
    return sorted(EXAMPLES_DIR.glob("*.json"))


def read_example(path: Path) -> dict:
    data = json.loads(path.read_text())
    return {
        "name": data["name"],
        "description": data["description"],
        "definition": data["definition"],
    }


def load_examples(created_by=None) -> list[Workflow]:
    """Create and publish each example whose name no workflow has yet; returns those
    created (none when they are all there: loading twice changes nothing). Schedules of
    the examples start disabled."""
    from triggers.models import Schedule
    from triggers.schedules import set_enabled

    existing = set(Workflow.objects.values_list("name", flat=True))
    created = []
    for path in example_files():
        example = read_example(path)
        if example["name"] in existing:
            continue
        with transaction.atomic():
            workflow = Workflow.objects.create(**example, created_by=created_by)
            workflow.publish()
            for schedule in Schedule.objects.filter(lineage=workflow.lineage):
                set_enabled(schedule, False)
        created.append(workflow)
    return created


def is_empty_installation() -> bool:
    """No workflow and no run yet: the first start (deleting every workflow later does not
    bring the examples back)."""
    return not Workflow.objects.exists() and not Run.objects.exists()
