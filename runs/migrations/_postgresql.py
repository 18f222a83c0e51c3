"""SQL that exists only on PostgreSQL (SQLite does the same work in Python).

The leading underscore keeps Django's migration loader from taking this for a migration.
"""

from django.db import migrations


def postgresql_only(create: str, drop: str) -> migrations.RunPython:
    def forwards(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(create, params=None)

    def backwards(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(drop, params=None)

    return migrations.RunPython(forwards, backwards)
