"""The process-local fan-out: one channel-layer membership per group however many local
subscribers, and the work of a delivery shared between them."""

import asyncio

import pytest
from channels.layers import get_channel_layer

from runs import fanout
from runs.fanout import Delivery, get_fanout
from runs.tests.test_consumers import IN_MEMORY

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def in_memory_layer(settings):
    settings.CHANNEL_LAYERS = IN_MEMORY


async def next_delivery(inbox: asyncio.Queue) -> Delivery:
    return await asyncio.wait_for(inbox.get(), 5)


async def test_the_process_joins_a_group_once_and_leaves_it_with_the_last_subscriber():
    hub = get_fanout()
    layer = get_channel_layer()
    inboxes = [asyncio.Queue() for _ in range(3)]
    for inbox in inboxes:
        await hub.subscribe("g1", inbox.put_nowait)
    assert list(layer.groups["g1"]) == [hub.channel]

    await fanout.group_send("g1", {"n": 1})
    deliveries = [await next_delivery(inbox) for inbox in inboxes]
    assert all(d is deliveries[0] for d in deliveries)  # one object, shared
    assert deliveries[0].message["n"] == 1

    await hub.unsubscribe("g1", inboxes[0].put_nowait)
    await fanout.group_send("g1", {"n": 2})
    assert [(await next_delivery(i)).message["n"] for i in inboxes[1:]] == [2, 2]
    assert inboxes[0].empty()

    for inbox in inboxes[1:]:
        await hub.unsubscribe("g1", inbox.put_nowait)
    assert "g1" not in layer.groups and hub.subscribers == {}
    assert hub._receiving is None


async def test_messages_of_other_groups_do_not_reach_a_subscriber():
    hub = get_fanout()
    mine, theirs = asyncio.Queue(), asyncio.Queue()
    await hub.subscribe("mine", mine.put_nowait)
    await hub.subscribe("theirs", theirs.put_nowait)
    await fanout.group_send("theirs", {"n": 1})
    await fanout.group_send("mine", {"n": 2})
    assert (await next_delivery(mine)).message["n"] == 2
    assert (await next_delivery(theirs)).message["n"] == 1
    assert mine.empty() and theirs.empty()
    await hub.unsubscribe("mine", mine.put_nowait)
    await hub.unsubscribe("theirs", theirs.put_nowait)


async def test_a_delivery_computes_shared_work_once():
    delivery = Delivery({})
    calls = []

    def compute():
        calls.append(1)
        return "json"

    async def render():
        calls.append(2)
        await asyncio.sleep(0.01)
        return "html"

    assert [delivery.once("k", compute) for _ in range(3)] == ["json"] * 3
    results = await asyncio.gather(*(delivery.once_async("r", render) for _ in range(5)))
    assert results == ["html"] * 5
    assert calls == [1, 2]


async def test_memberships_are_renewed_while_subscribed(monkeypatch):
    monkeypatch.setattr(fanout, "RENEW_SECONDS", 0.01)
    hub = get_fanout()
    layer = get_channel_layer()
    inbox = asyncio.Queue()
    await hub.subscribe("renewed", inbox.put_nowait)
    joined = layer.groups["renewed"][hub.channel]
    await asyncio.sleep(0.1)
    assert layer.groups["renewed"][hub.channel] > joined  # the join time moved on
    await hub.unsubscribe("renewed", inbox.put_nowait)
    assert hub._renewing is None


async def test_with_the_in_memory_layer_a_group_nobody_joined_has_no_members():
    hub = get_fanout()
    assert fanout.may_have_members("g3") is False  # synchronous senders skip the send
    inbox = asyncio.Queue()
    await hub.subscribe("g3", inbox.put_nowait)
    assert fanout.may_have_members("g3") is True
    await hub.unsubscribe("g3", inbox.put_nowait)
    assert fanout.may_have_members("g3") is False


def test_any_other_layer_may_have_members_in_other_processes(settings):
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": ["redis://127.0.0.1:6379/15"]},
        }
    }
    assert fanout.may_have_members("anything") is True
