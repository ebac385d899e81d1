"""BrokerContact: ready while the broker acknowledges ticks; no ticks queued while it does not."""

from __future__ import annotations

import asyncio

from streams.broker_contact import BrokerContact


def test_readiness_follows_the_acknowledgements_of_ticks():
    async def run() -> None:
        now = [100.0]
        contact = BrokerContact(patience=16.0, clock=lambda: now[0])
        assert not contact.ready(partitions=2)  # nothing acknowledged yet
        # Found by review: before the group assigned anything it said ready.
        assert not contact.ready(partitions=0)
        contact.joined()
        assert contact.ready(partitions=0)  # assigned nothing: nothing it could fail to do
        loop = asyncio.get_running_loop()
        first = [loop.create_future(), loop.create_future()]
        assert contact.may_send()
        contact.sent(first)
        assert not contact.may_send()  # the last ticks still wait: no more are queued
        for future in first:
            future.set_result(None)
        await asyncio.sleep(0)  # done callbacks run on the loop
        assert contact.may_send() and contact.ready(partitions=2)
        now[0] += 16.0
        assert contact.ready(partitions=2) and contact.age() == 16.0
        lost = loop.create_future()
        contact.sent([lost])
        now[0] += 0.5
        lost.set_exception(ConnectionError("broker gone"))
        await asyncio.sleep(0)
        assert contact.may_send()  # a failed tick is settled: the next interval tries again
        assert not contact.ready(partitions=2)  # but no acknowledgement for 16.5 s
        assert lost.exception() is not None

    asyncio.run(run())
