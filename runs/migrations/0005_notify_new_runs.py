"""On PostgreSQL, a new run wakes the workers by itself: an AFTER INSERT trigger sends
`NOTIFY flowmatrx_runs, '<run id>'` (delivered when the inserting transaction commits),
so starting a run is one statement and one round trip (runs/lifecycle.py:start_run)."""

from django.db import migrations

from runs.migrations._postgresql import postgresql_only

CREATE = r"""
CREATE OR REPLACE FUNCTION flowmatrx_notify_new_run() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('flowmatrx_runs', NEW.id::text);
    RETURN NULL;
END;
$$;
DROP TRIGGER IF EXISTS runs_run_notify_new ON runs_run;
CREATE TRIGGER runs_run_notify_new AFTER INSERT ON runs_run
    FOR EACH ROW EXECUTE FUNCTION flowmatrx_notify_new_run();
"""

DROP = """
DROP TRIGGER IF EXISTS runs_run_notify_new ON runs_run;
DROP FUNCTION IF EXISTS flowmatrx_notify_new_run();
"""


class Migration(migrations.Migration):
    dependencies = [("runs", "0004_checkpoint_function")]
    operations = [postgresql_only(CREATE, DROP)]
