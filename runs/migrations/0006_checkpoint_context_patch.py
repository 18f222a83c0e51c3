"""The checkpoint takes the context as a patch: only the keys the batch wrote, merged into
the stored context with jsonb `||` (top-level keys; the patch wins). Sending the whole
context on every checkpoint made a long chain quadratic in bytes encoded and shipped.

Everything else is migration 0004's function, unchanged (its text is reused from there).
"""

from importlib import import_module

from django.db import migrations

from runs.migrations._postgresql import postgresql_only

_0004 = import_module("runs.migrations.0004_checkpoint_function")

WHOLE = "context = CASE WHEN r ? 'context' THEN r->'context' ELSE context END,"
PATCHED = """context = CASE WHEN r ? 'context' THEN r->'context'
                       WHEN p_batch ? 'context_patch' THEN context || (p_batch->'context_patch')
                       ELSE context END,"""

assert WHOLE in _0004.CREATE
CREATE = _0004.CREATE.replace(WHOLE, PATCHED)


class Migration(migrations.Migration):
    dependencies = [("runs", "0005_notify_new_runs")]
    operations = [postgresql_only(CREATE, _0004.CREATE)]
