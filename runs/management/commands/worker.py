"""`manage.py worker`: an engine worker process (run N of them, on any machines)."""

import asyncio
import signal

from django.core.management.base import BaseCommand

from runs.worker import Worker


class Command(BaseCommand):
    help = "Run an engine worker: claim runs from the database and execute them."

    def add_arguments(self, parser):
        parser.add_argument("--concurrency", type=int, default=100, help="Runs at once.")
        parser.add_argument("--name", default="", help="Suffix for the worker's lease name.")

    def handle(self, *args, concurrency, name, **options):
        worker = Worker.from_settings(name_suffix=name, concurrency=concurrency)

        async def main():
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, worker.request_stop)
            await worker.run()

        self.stdout.write(f"worker {worker.name} running; SIGTERM drains and stops it")
        asyncio.run(main())
