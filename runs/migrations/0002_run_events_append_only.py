"""On PostgreSQL, a trigger refuses UPDATE and DELETE of run events.

The single exception is a whole-run purge, which sets the transaction-local setting
`flowmatrx.purge_events` (see RunEventQuerySet.purge_for_runs). Other backends rely on
the model's refusal.
"""

from django.db import migrations

from runs.migrations._postgresql import postgresql_only

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


class Migration(migrations.Migration):
    dependencies = [("runs", "0001_initial")]
    operations = [postgresql_only(CREATE, DROP)]
