from django.core.management.base import BaseCommand, CommandError

from accounts.models import ApiKey


class Command(BaseCommand):
    help = "Revoke an API key, given in full or by its prefix (fmx_xxxxxxxxxx)."

    def add_arguments(self, parser):
        parser.add_argument("key", help="The key, or its public prefix.")

    def handle(self, *args, key, **options):
        keys = list(ApiKey.objects.matching(key))
        if not keys:
            raise CommandError("no API key matches")
        for api_key in keys:
            was_active = api_key.revoked_at is None
            api_key.revoke()
            state = "revoked" if was_active else "was already revoked"
            self.stdout.write(f"{api_key.display_prefix} ({api_key.user}) {state}")
