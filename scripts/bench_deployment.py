"""One benchmark deployment (streams/worker_processes.py) and what the broker knows about it.

Everything a run creates is named `<name>...`, so deleting the topics and consumer groups that
start with the run's tag removes all of it (inputs, outputs, changelog, assignor topic).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.topics import delete_group
from streams.worker_processes import BOOTSTRAP, REPO, WorkerProcess
from streams.worker_processes import LocalDeployment as Deployment

__all__ = ["BOOTSTRAP", "REPO", "BrokerProbe", "Deployment", "WorkerProcess"]


class BrokerProbe:
    """What the broker knows: end offsets, committed offsets; cleanup of a run's names."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, request_timeout_ms=30_000)

    async def __aenter__(self) -> BrokerProbe:
        await self.admin.start()
        await self.consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()
        await self.admin.close()

    async def end_offsets(
        self, topics: Iterable[str], partitions: int
    ) -> dict[TopicPartition, int]:
        tps = [TopicPartition(t, p) for t in topics for p in range(partitions)]
        return dict(await self.consumer.end_offsets(tps))

    async def committed(self, group: str, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        offsets = await self.admin.list_consumer_group_offsets(group, partitions=tps)
        return {tp: meta.offset for tp, meta in offsets.items()}

    async def create_topic(self, name: str, partitions: int) -> None:
        await self.admin.create_topics([NewTopic(name, partitions, 1)])
        await self.consumer.end_offsets([TopicPartition(name, p) for p in range(partitions)])

    async def delete_run(self, tag: str, groups: list[str]) -> list[str]:
        """Delete the topics named `<tag>...` and the given (empty) groups; return the topics."""
        names = [t for t in await self.admin.list_topics() if t.startswith(tag)]
        if names:
            await self.admin.delete_topics(names)
        for group in groups:
            # Best effort: an empty group expires anyway.
            with contextlib.suppress(Exception):
                await delete_group(self.admin, group)
        return names
