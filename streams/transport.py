"""The Kafka transport of the worker: Faust's aiokafka driver, with a leaner message drain.

Faust hands each fetched message to its conductor inside `wait_first`, which creates four
tasks and an `asyncio.wait` per message so that a flow suspension (a rebalance) can abandon
a delivery blocked on a full stream buffer. That costs more than everything else Faust does
per message. Here a message is delivered with a plain await while the flow runs, and through
`wait_first` as before once it is suspended. A delivery that blocks and then outlives a
rebalance reaches the stream with an old generation id, and Faust's stream skips those.
"""

from __future__ import annotations

import asyncio
from typing import Any

import faust
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as driver
from faust.types import TransportT


class DrainingConsumer(driver.Consumer):
    """Faust's aiokafka consumer with a drain loop that awaits each delivery directly."""

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - broker-driven
        """Read messages with getmany and hand each to the conductor, in partition order."""
        callback = self.callback
        consumer_stopped = self._stopped.is_set
        fetcher_stopped = fetcher._stopped.is_set
        read_offset = self._read_offset
        acks_enabled_for = self.app.topics.acks_enabled_for
        suspended = self.suspend_flow.is_set
        since_yield = 0
        try:
            while not (consumer_stopped() or fetcher_stopped()):
                self.diag.set_flag(CONSUMER_FETCHING)
                batch = self.getmany(timeout=1.0)
                # getmany may return at once many times in a row: let other tasks run.
                await asyncio.sleep(0)
                if self.should_stop:
                    break
                async for tp, message in batch:
                    since_yield += 1
                    if since_yield > 100:
                        await asyncio.sleep(0)
                        since_yield = 0
                    offset = message.offset
                    last = read_offset[tp]
                    if last is not None and offset < last:
                        continue  # already delivered before a seek
                    if last and offset - last > 1 and acks_enabled_for(message.topic):
                        await self._add_gap(tp, last + 1, offset)
                    if self._commit_every is not None and self._n_acked >= self._commit_every:
                        self._n_acked = 0
                        await self.commit()
                    if suspended():
                        await self.wait_first(callback(message), self.suspend_flow.wait())
                    else:
                        await callback(message)
                    read_offset[tp] = offset
                self.diag.unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if not self.transport.app.should_stop:
                raise
        except asyncio.CancelledError:
            if not self.transport.app.should_stop:
                raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)


class DrainingTransport(driver.Transport):
    """The aiokafka transport with the draining consumer."""

    Consumer = DrainingConsumer


class SentinelApp(faust.App):
    """The Faust app, consuming through the draining transport."""

    def _new_transport(self) -> TransportT:
        return DrainingTransport(self.conf.broker_consumer, self)
