"""On PostgreSQL, a checkpoint is one function call: one round trip, one transaction.

`flowmatrx_checkpoint(run, fence, batch)` locks the run row, checks the fence, numbers and
inserts the events, sets the run's fields and writes the step runs (see
runs/store.py:DjangoStore.commit_sync, which builds `batch`, and the ORM path used on
SQLite, which does the same in Python). Returns (last_seq, now), or (-1, now) when the
fence is stale and (-2, now) when `unless_resumed` found a resumed step; in both cases
nothing is written.
"""

from django.db import migrations

from runs.migrations._postgresql import postgresql_only

CREATE = r"""
CREATE OR REPLACE FUNCTION flowmatrx_checkpoint(p_run uuid, p_fence bigint, p_batch jsonb)
RETURNS TABLE (last_seq bigint, at timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    r jsonb := COALESCE(p_batch->'run', '{}'::jsonb);
    n integer := jsonb_array_length(COALESCE(p_batch->'events', '[]'::jsonb));
    rel boolean := COALESCE((p_batch->>'release')::boolean, false);
    v_now timestamptz := clock_timestamp();
    v_last bigint;
    s jsonb;
    f jsonb;
BEGIN
    PERFORM 1 FROM runs_run WHERE id = p_run AND fence = p_fence FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT -1::bigint, v_now;
        RETURN;
    END IF;
    IF COALESCE((p_batch->>'unless_resumed')::boolean, false) AND EXISTS (
        SELECT 1 FROM runs_steprun
        WHERE run_id = p_run AND status = 'waiting' AND resume_data IS NOT NULL
    ) THEN
        RETURN QUERY SELECT -2::bigint, v_now;
        RETURN;
    END IF;

    UPDATE runs_run SET
        last_seq = runs_run.last_seq + n,
        updated_at = v_now,
        status = COALESCE(r->>'status', status),
        error = COALESCE(r->>'error', error),
        context = CASE WHEN r ? 'context' THEN r->'context' ELSE context END,
        started_at = CASE WHEN r ? 'started_at' THEN (r->>'started_at')::timestamptz
                          ELSE started_at END,
        completed_at = CASE WHEN r ? 'completed_at' THEN (r->>'completed_at')::timestamptz
                            ELSE completed_at END,
        wake_at = CASE WHEN r ? 'wake_at' THEN (r->>'wake_at')::timestamptz ELSE wake_at END,
        lease_owner = CASE WHEN rel THEN '' ELSE lease_owner END,
        lease_expires_at = CASE WHEN rel THEN NULL ELSE lease_expires_at END
    WHERE id = p_run
    RETURNING runs_run.last_seq INTO v_last;

    IF n > 0 THEN
        INSERT INTO runs_runevent (run_id, seq, event_type, step_id, payload, created_at)
        SELECT p_run, v_last - n + e.ord, e.value->>'event_type',
               COALESCE(e.value->>'step_id', ''), COALESCE(e.value->'payload', '{}'::jsonb),
               v_now
        FROM jsonb_array_elements(p_batch->'events') WITH ORDINALITY AS e(value, ord);
    END IF;

    FOR s IN SELECT value FROM jsonb_array_elements(COALESCE(p_batch->'steps', '[]'::jsonb))
    LOOP
        f := s->'fields';
        IF COALESCE((s->>'insert')::boolean, false) THEN
            INSERT INTO runs_steprun (
                run_id, step_id, attempt, step_type, status, input, output, error,
                waiting_for, wake_at, resume_data, created_at, started_at, completed_at
            ) VALUES (
                p_run, s->>'step_id', (s->>'attempt')::integer,
                COALESCE(f->>'step_type', ''), COALESCE(f->>'status', 'pending'),
                NULLIF(f->'input', 'null'::jsonb), NULLIF(f->'output', 'null'::jsonb),
                COALESCE(f->>'error', ''), COALESCE(f->>'waiting_for', ''),
                (f->>'wake_at')::timestamptz, NULLIF(f->'resume_data', 'null'::jsonb),
                v_now, (f->>'started_at')::timestamptz, (f->>'completed_at')::timestamptz
            );
        ELSE
            UPDATE runs_steprun SET
                step_type = COALESCE(f->>'step_type', step_type),
                status = COALESCE(f->>'status', status),
                input = CASE WHEN f ? 'input' THEN NULLIF(f->'input', 'null'::jsonb)
                             ELSE input END,
                output = CASE WHEN f ? 'output' THEN NULLIF(f->'output', 'null'::jsonb)
                              ELSE output END,
                error = COALESCE(f->>'error', error),
                waiting_for = COALESCE(f->>'waiting_for', waiting_for),
                wake_at = CASE WHEN f ? 'wake_at' THEN (f->>'wake_at')::timestamptz
                               ELSE wake_at END,
                resume_data = CASE WHEN f ? 'resume_data'
                                   THEN NULLIF(f->'resume_data', 'null'::jsonb)
                                   ELSE resume_data END,
                started_at = CASE WHEN f ? 'started_at' THEN (f->>'started_at')::timestamptz
                                  ELSE started_at END,
                completed_at = CASE WHEN f ? 'completed_at'
                                    THEN (f->>'completed_at')::timestamptz
                                    ELSE completed_at END
            WHERE run_id = p_run AND step_id = s->>'step_id'
              AND attempt = (s->>'attempt')::integer;
        END IF;
    END LOOP;

    RETURN QUERY SELECT v_last, v_now;
END;
$$;
"""

DROP = "DROP FUNCTION IF EXISTS flowmatrx_checkpoint(uuid, bigint, jsonb);"


class Migration(migrations.Migration):
    dependencies = [("runs", "0003_steprun_resume_data")]
    operations = [postgresql_only(CREATE, DROP)]
