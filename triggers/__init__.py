"""Triggers: what starts a published workflow without a person (SPEC §2 `settings.triggers`).

* `webhooks` — `POST /hooks/<token>`: one unguessable URL per workflow (stable across its
  versions), optional HMAC signature, replay refusal, size limit, idempotency keys.
* `schedules` — cron schedules in a time zone, fired exactly once per tick by whichever
  worker claims them first (`fire_due`, called from the worker's loop).
* `sync` — keeps the schedule rows in step with the newest published version of each
  workflow (called when a version is published or archived).

Event triggers live with the events in `runs.events`.
"""
