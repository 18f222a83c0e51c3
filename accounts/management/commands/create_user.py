import getpass
import sys

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from accounts.roles import Role
from accounts.users import create_user


class Command(BaseCommand):
    help = (
        "Create a user with a role (admin, member or viewer). Without --password it asks "
        "for one when run in a terminal; with --no-password the user cannot sign in until "
        "a password is set (manage.py changepassword)."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--role", required=True, choices=[r.value for r in Role])
        parser.add_argument("--password", default=None)
        parser.add_argument("--no-password", action="store_true")
        parser.add_argument("--email", default="")

    def handle(self, *args, username, role, password, no_password, email, **options):
        User = get_user_model()
        if User.objects.filter(username=username).exists():
            raise CommandError(f"a user named {username!r} exists already")
        if password is None and not no_password:
            if not sys.stdin.isatty():
                raise CommandError("give --password (or --no-password) when not in a terminal")
            password = getpass.getpass("Password: ")
            if password != getpass.getpass("Password (again): "):
                raise CommandError("the passwords differ")
        if password is not None:
            try:
                validate_password(password, User(username=username, email=email))
            except ValidationError as error:
                raise CommandError(" ".join(error.messages)) from error
        user = create_user(username, role, password, email=email)
        self.stdout.write(f"Created {user.get_username()} ({role}).")
