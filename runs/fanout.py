"""One channel-layer membership per process and group, fanned out to the local subscribers.

When every WebSocket consumer joins a group itself, each published message costs, per
connection: a message in the channel layer's receive buffers, a channels dispatch (with a
thread hop to close stale database connections) and its own JSON encoding or rendering.
With 100 viewers of one run that was most of the latency. Here the process joins the group
once, on a channel of its own, and hands each message to its subscribers as one `Delivery`,
on which they share the work that does not depend on the connection (`Delivery.once`).

`subscribe` returns once the group is joined, so whatever is published after it reaches the
subscriber: the DB-first, catch-up semantics of the streams hold as before.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from weakref import WeakKeyDictionary

from channels.layers import InMemoryChannelLayer, get_channel_layer

logger = logging.getLogger("runs")

MESSAGE_TYPE = "fanout.message"
YIELD_EVERY = 10
RENEW_SECONDS = 3600


class Delivery:
    """One published message as every local subscriber sees it, with a memo for the work
    they share (keyed by what the result depends on)."""

    __slots__ = ("_memo", "message")

    def __init__(self, message: dict):
        self.message = message
        self._memo: dict = {}

    def once(self, key, compute: Callable[[], Any]) -> Any:
        try:
            return self._memo[key]
        except KeyError:
            value = self._memo[key] = compute()
            return value

    async def once_async(self, key, compute: Callable[[], Awaitable[Any]]) -> Any:
        """`await compute()` once; subscribers asking meanwhile await the same result."""
        task = self._memo.get(key)
        if task is None:
            task = self._memo[key] = asyncio.ensure_future(compute())
        return await asyncio.shield(task)


Subscriber = Callable[[Delivery], None]


class Fanout:
    """The process's memberships on one channel layer, within one event loop."""

    def __init__(self, layer):
        self.layer = layer
        self.channel: str | None = None
        self.subscribers: dict[str, list[Subscriber]] = {}
        self._membership = asyncio.Lock()
        self._receiving: asyncio.Task | None = None
        self._renewing: asyncio.Task | None = None

    async def subscribe(self, group: str, subscriber: Subscriber) -> None:
        """Call `subscriber(delivery)` (synchronously; it must not block) for each message
        sent to `group` from now on, until `unsubscribe`."""
        async with self._membership:
            if self.channel is None:
                self.channel = await self.layer.new_channel()
            members = self.subscribers.get(group)
            if members is None:
                await self.layer.group_add(group, self.channel)
                members = self.subscribers[group] = []
            members.append(subscriber)
            if self._receiving is None:
                self._receiving = asyncio.ensure_future(self._receive())
                self._renewing = asyncio.ensure_future(self._renew())

    async def unsubscribe(self, group: str, subscriber: Subscriber) -> None:
        async with self._membership:
            members = self.subscribers.get(group)
            if members is None or subscriber not in members:
                return
            members.remove(subscriber)
            if members:
                return
            del self.subscribers[group]
            try:
                await self.layer.group_discard(group, self.channel)
            finally:
                if not self.subscribers and self._receiving is not None:
                    tasks = [self._receiving, self._renewing]
                    for task in tasks:
                        task.cancel()
                    await asyncio.gather(*tasks, return_exceptions=True)
                    self._receiving = self._renewing = None

    async def _renew(self) -> None:
        """Join the groups again now and then: channel layers forget a membership after a
        while (`group_expiry`, a day by default), and this one lasts as long as anybody in
        the process watches."""
        while True:
            await asyncio.sleep(RENEW_SECONDS)
            async with self._membership:
                for group in list(self.subscribers):
                    try:
                        await self.layer.group_add(group, self.channel)
                    except Exception:
                        logger.warning("fan-out: renewing %s failed", group, exc_info=True)

    async def _receive(self) -> None:
        while True:
            try:
                message = await self.layer.receive(self.channel)
            except asyncio.CancelledError:
                raise
            except Exception:
                # The layer is unreachable: retry; a lost message costs only a catch-up.
                logger.warning("fan-out: receiving from the channel layer failed", exc_info=True)
                await asyncio.sleep(1)
                continue
            members = self.subscribers.get(message.get("group", ""))
            if not members:
                continue
            delivery = Delivery(message)
            for count, subscriber in enumerate(list(members), 1):
                try:
                    subscriber(delivery)
                except Exception:
                    logger.exception("fan-out: a subscriber of %s failed", message.get("group"))
                if count % YIELD_EVERY == 0:
                    # Let the subscribers called so far run (and their sockets be written)
                    # before calling the next ones: the first viewers need not wait for
                    # the last ones to be served.
                    await asyncio.sleep(0)


_fanouts: WeakKeyDictionary = WeakKeyDictionary()


def get_fanout() -> Fanout:
    """The fan-out of the default channel layer in the running event loop."""
    layer = get_channel_layer()
    loop = asyncio.get_running_loop()
    per_layer = _fanouts.setdefault(loop, {})
    fanout = per_layer.get(id(layer))
    if fanout is None or fanout.layer is not layer:
        fanout = per_layer[id(layer)] = Fanout(layer)
    return fanout


def may_have_members(group: str) -> bool:
    """False only when a send to `group` surely reaches nobody: with the in-memory layer
    only this process's consumers can receive, and none has joined. Lets synchronous code
    skip the hop into the event loop (a worker or a script creating runs, with no server
    in the process)."""
    layer = get_channel_layer()
    if layer is None:
        return False
    if isinstance(layer, InMemoryChannelLayer):
        return bool(layer.groups.get(group))
    return True


async def group_send(group: str, message: dict) -> None:
    """Send `message` to the processes subscribed to `group` (see `Fanout.subscribe`)."""
    layer = get_channel_layer()
    if layer is not None:
        await layer.group_send(group, {**message, "type": MESSAGE_TYPE, "group": group})
