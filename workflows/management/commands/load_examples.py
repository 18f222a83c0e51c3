"""`manage.py load_examples`: create and publish the example workflows that are missing."""

from django.core.management.base import BaseCommand

from workflows.examples import load_examples


class Command(BaseCommand):
    help = "Create and publish the example workflows (those not there yet, by name)."

    def handle(self, *args, **options):
        created = load_examples()
        for workflow in created:
            self.stdout.write(f"loaded {workflow.name}")
        if not created:
            self.stdout.write("the examples are already there")
