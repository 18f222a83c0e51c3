"""Webhook delivery rows (the replay and idempotency guard) are pruned once they cannot
refuse a request any more: signatures after twice the signature tolerance (a replay is
refused as stale by then: test_webhooks), delivery ids and idempotency keys after the
replay window. The workers do it periodically."""

import asyncio
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.db import connection

from runs import eventlog
from runs.tests.conftest import run_coroutine
from runs.worker import Worker
from triggers.models import DeliveryKind, WebhookDelivery, WebhookEndpoint
from triggers.webhooks import SIGNATURE_TOLERANCE, prune_deliveries


@pytest.fixture
def endpoint(db):
    return WebhookEndpoint.objects.create(lineage="00000000-0000-0000-0000-000000000001")


def delivery(endpoint, kind, key, age_seconds, now):
    return WebhookDelivery.objects.create(
        endpoint=endpoint, kind=kind, key=key, received_at=now - timedelta(seconds=age_seconds)
    )


def kept(endpoint):
    return set(WebhookDelivery.objects.filter(endpoint=endpoint).values_list("key", flat=True))


def test_it_prunes_each_kind_after_its_window(endpoint, settings):
    settings.FLOWMATRX_WEBHOOK_REPLAY_WINDOW = 3600
    now = eventlog.db_now()
    edge = 2 * SIGNATURE_TOLERANCE
    delivery(endpoint, DeliveryKind.SIGNATURE, "sig-old", edge + 1, now)
    delivery(endpoint, DeliveryKind.SIGNATURE, "sig-young", edge - 1, now)
    delivery(endpoint, DeliveryKind.DELIVERY_ID, "id-old", 3601, now)
    delivery(endpoint, DeliveryKind.DELIVERY_ID, "id-young", edge + 1, now)
    delivery(endpoint, DeliveryKind.IDEMPOTENCY_KEY, "key-old", 3601, now)
    delivery(endpoint, DeliveryKind.IDEMPOTENCY_KEY, "key-young", 3599, now)
    assert prune_deliveries(now) == 3
    assert kept(endpoint) == {"sig-young", "id-young", "key-young"}
    assert prune_deliveries(now) == 0


def test_it_deletes_in_batches(endpoint):
    now = eventlog.db_now()
    for i in range(7):
        delivery(endpoint, DeliveryKind.SIGNATURE, f"s{i}", 3 * SIGNATURE_TOLERANCE, now)
    delivery(endpoint, DeliveryKind.SIGNATURE, "fresh", 1, now)
    assert prune_deliveries(now, batch=3) == 7
    assert kept(endpoint) == {"fresh"}


def test_the_worker_prunes_periodically(transactional_db, monkeypatch):
    endpoint = WebhookEndpoint.objects.create(lineage="00000000-0000-0000-0000-000000000002")
    now = eventlog.db_now()
    delivery(endpoint, DeliveryKind.SIGNATURE, "stale", 3 * SIGNATURE_TOLERANCE, now)
    delivery(endpoint, DeliveryKind.SIGNATURE, "fresh", 1, now)
    monkeypatch.setattr("runs.worker.HOUSEKEEPING_SECONDS", 0.05)

    async def main():
        worker = Worker("pruner", poll_seconds=0.05)
        task = asyncio.ensure_future(worker.run())
        try:
            for _ in range(100):
                await asyncio.sleep(0.05)
                if await sync_to_async(kept)(endpoint) == {"fresh"}:
                    break
        finally:
            worker.request_stop()
            await task
            await sync_to_async(lambda: connection.close())()  # the thread-sensitive one

    run_coroutine(main())
    assert kept(endpoint) == {"fresh"}
