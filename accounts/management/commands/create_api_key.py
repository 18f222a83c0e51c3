from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from accounts.models import SCOPES, ApiKey


class Command(BaseCommand):
    help = "Create an API key for a user and print it (it is shown only this once)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="What the key is for.")
        parser.add_argument(
            "--scopes",
            default=",".join(SCOPES),
            help=f"Comma-separated, some of {','.join(SCOPES)} (default: all).",
        )
        parser.add_argument("--expires-days", type=int, default=None, help="Expire after N days.")

    def handle(self, *args, username, name, scopes, expires_days, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user named {username!r}")
        scope_list = [s.strip() for s in scopes.split(",") if s.strip()]
        expires_at = None
        if expires_days is not None:
            if expires_days <= 0:
                raise CommandError("--expires-days must be a positive number of days")
            expires_at = timezone.now() + timedelta(days=expires_days)
        try:
            key, plaintext = ApiKey.create(user, name, scope_list, expires_at=expires_at)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(plaintext)
        self.stderr.write(
            f"Created {key.display_prefix} for {user} (scopes: {', '.join(key.scopes)}"
            + (f", expires {expires_at:%Y-%m-%d %H:%M} UTC" if expires_at else "")
            + "). Store it now: it cannot be shown again."
        )
