"""`manage.py serve`: the embedded mode in one process.

Applies migrations (and loads the example workflows into an empty installation), then
serves HTTP + WebSockets with daphne and, unless --no-worker,
runs the engine worker on the same asyncio loop (daphne's Twisted reactor runs on
asyncio), so one command gives a working server with no other services.
"""

import asyncio
import logging

from django.core.management import call_command
from django.core.management.base import BaseCommand

logger = logging.getLogger("flowmatrx")


class Command(BaseCommand):
    help = "Serve Flow Matrx (HTTP + WebSockets) with the engine worker in the same process."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument(
            "--no-worker", action="store_true", help="Serve without the embedded engine worker."
        )
        parser.add_argument(
            "--no-migrate", action="store_true", help="Do not apply migrations first."
        )
        parser.add_argument(
            "--no-examples",
            action="store_true",
            help="Do not load the example workflows into an empty installation.",
        )

    def handle(self, *args, host, port, no_worker, no_migrate, no_examples, **options):
        if not no_migrate:
            call_command("migrate", interactive=False, verbosity=0)
        if not no_examples:
            from workflows.examples import is_empty_installation, load_examples

            if is_empty_installation():
                loaded = load_examples()
                self.stdout.write(f"Loaded {len(loaded)} example workflows.")

        from daphne.endpoints import build_endpoint_description_strings
        from daphne.server import Server, reactor
        from twisted.internet.defer import Deferred

        from flowmatrx.asgi import application

        def start_worker():
            from runs.worker import Worker

            worker = Worker.from_settings(name_suffix="serve")
            task = asyncio.ensure_future(worker.run())

            def drain():
                worker.request_stop()
                return Deferred.fromFuture(task)

            reactor.addSystemEventTrigger("before", "shutdown", drain)

        if not no_worker:
            reactor.callWhenRunning(start_worker)

        self.stdout.write(
            f"Flow Matrx on http://{host}:{port}/ "
            f"({'no worker' if no_worker else 'with the engine worker'}); Ctrl-C stops it."
        )
        Server(
            application=application,
            endpoints=build_endpoint_description_strings(host=host, port=port),
            signal_handlers=True,
            verbosity=1,
        ).run()
