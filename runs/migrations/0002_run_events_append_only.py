"""On PostgreSQL, a trigger refuses UPDATE and DELETE of run events.

The single exception is a whole-run purge, which sets the transaction-local setting
`flowmatrx.purge_events` (see RunEventQuerySet.purge_for_runs). Other backends rely on
the model's refusal.
"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION flowmatrx_run_events_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('flowmatrx.purge_events', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'run events are append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER runs_runevent_append_only
    BEFORE UPDATE OR DELETE ON runs_runevent
    FOR EACH ROW EXECUTE FUNCTION flowmatrx_run_events_append_only();
"""

DROP = """
DROP TRIGGER IF EXISTS runs_runevent_append_only ON runs_runevent;
DROP FUNCTION IF EXISTS flowmatrx_run_events_append_only();
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("runs", "0001_initial")]
    operations = [migrations.RunPython(forwards, backwards)]
