"""Create and delete the co-partitioned topics of one deployment (inputs, outputs, ticks).

The table's changelog is named after the app id, not the prefix, and Faust creates it: it is
checked here when it exists, since it keeps the layout of the deployment that made it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import NamedTuple

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from alerts.rule_config import ConfigError
from streams.settings import Settings

log = logging.getLogger("kmg.topics")

_LEADER_WAITS = 50


class TopicSpec(NamedTuple):
    name: str
    partitions: int
    config: dict[str, str]


class TopicLayoutError(ConfigError):
    """The topics cannot be made or used as configured (a bad name, another partition count)."""


DEAD_LETTER_MAX_BYTES = 4 * 1024 * 1024
TABLE_NAME = "patients"
# Kafka's CreateTopics errors a configuration can cause.
_CREATE_ERRORS = {
    17: "not a valid topic name (letters, digits, '.', '_' and '-', at most 249)",
    37: "invalid partition count",
    38: "invalid replication factor (more than the brokers there are?)",
    40: "invalid topic configuration",
}


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """Return every topic the worker reads or writes, all with the same partition count."""
    n = settings.partitions
    ticks_ms = str(int(settings.ticks_retention_hours * 3_600_000))
    return [
        TopicSpec(settings.topic_labs, n, {}),
        TopicSpec(settings.topic_meds, n, {}),
        TopicSpec(settings.topic_alerts, n, {}),
        # Room for any input the broker accepted, whole, with the dead letter's headers.
        TopicSpec(settings.topic_dead_letter, n, {"max.message.bytes": str(DEAD_LETTER_MAX_BYTES)}),
        # Ticks matter only while fresh; a short retention keeps the topic small.
        TopicSpec(settings.topic_ticks, n, {"retention.ms": ticks_ms, "cleanup.policy": "delete"}),
    ]


def changelog_topic(settings: Settings) -> str:
    """Return the name Faust gives the patient table's changelog: `<app_id>-<table>-changelog`."""
    return f"{settings.app_id}-{TABLE_NAME}-changelog"


def changelog_config() -> dict[str, str]:
    """Return the changelog's extra topic settings (Faust creates the topic with them)."""
    # A patient's state may be as large as a request the producer sends (DEAD_LETTER_MAX_BYTES,
    # streams/app.py): with the broker's default of about 1 MB, a larger state could never be
    # written and every start of the worker would stop on it.
    return {"max.message.bytes": str(DEAD_LETTER_MAX_BYTES)}


async def ensure_topics(settings: Settings, attempts: int = 30) -> list[str]:
    """Create missing topics; raise TopicLayoutError if one exists with another partition count.

    The app's changelog, if it exists, must have the partition count too.

    Returns the names created. Retries while the broker is not reachable yet.
    """
    specs = topic_specs(settings)
    for attempt in range(attempts):
        admin = AIOKafkaAdminClient(
            bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=15_000
        )
        try:
            await admin.start()
            try:
                return await _ensure(admin, specs, settings)
            finally:
                await admin.close()
        except KafkaError as exc:
            if attempt == attempts - 1:
                raise
            log.warning("broker not ready (%s); retrying topic creation", type(exc).__name__)
            await asyncio.sleep(1.0)
    return []


async def _ensure(
    admin: AIOKafkaAdminClient, specs: list[TopicSpec], settings: Settings
) -> list[str]:
    existing = set(await admin.list_topics())
    changelog = changelog_topic(settings)
    if changelog in existing:
        # Checked before anything is created: a refused start leaves the broker as it was.
        await _check_changelog_partitions(admin, changelog, settings)
    missing = [s for s in specs if s.name not in existing]
    created: list[str] = []
    if missing:
        replicas = settings.replication_factor
        new = [NewTopic(s.name, s.partitions, replicas, topic_configs=s.config) for s in missing]
        response = await admin.create_topics(new)
        for name, code, *_ in getattr(response, "topic_errors", []):
            if code == 0:
                created.append(name)
            elif code != TopicAlreadyExistsError.errno:
                why = _CREATE_ERRORS.get(code, f"error code {code}")
                prefix = settings.topic_prefix
                raise TopicLayoutError(
                    f"cannot create topic {name!r} (KMG_TOPIC_PREFIX {prefix!r}): {why}"
                )
    want = {s.name: s.partitions for s in specs}
    for _ in range(_LEADER_WAITS):
        described = await admin.describe_topics(list(want))
        leaderless = False
        for entry in described:
            name, parts = entry["topic"], entry["partitions"]
            if entry.get("error_code", 0) or not parts:
                leaderless = True
                continue
            if len(parts) != want[name]:
                raise TopicLayoutError(
                    f"topic {name} has {len(parts)} partitions, not {want[name]} "
                    f"(KMG_PARTITIONS): topics must be co-partitioned, so set KMG_PARTITIONS="
                    f"{len(parts)} or use another KMG_TOPIC_PREFIX"
                )
            leaderless = leaderless or any(part["leader"] < 0 for part in parts)
        if not leaderless:
            break
        # New partitions answer NotLeaderForPartition until their leader is elected.
        await asyncio.sleep(0.2)
    if created:
        await _wait_until_served(settings.kafka_bootstrap, created, want)
        log.info("created topics: %s", ", ".join(created))
    limit = await max_message_bytes(admin, settings.topic_dead_letter)
    if limit is not None and limit < DEAD_LETTER_MAX_BYTES:
        log.warning(
            "topic %s takes messages up to %d bytes, fewer than an input may have: a larger "
            "invalid input is dead-lettered cut to its head (raise its max.message.bytes to %d)",
            settings.topic_dead_letter,
            limit,
            DEAD_LETTER_MAX_BYTES,
        )
    if changelog in existing:
        limit = await max_message_bytes(admin, changelog)
        if limit is not None and limit < DEAD_LETTER_MAX_BYTES:
            log.warning(
                "topic %s takes messages up to %d bytes, fewer than a patient's state may have: "
                "a larger state cannot be saved and stops the worker at every start (raise its "
                "max.message.bytes to %d)",
                changelog,
                limit,
                DEAD_LETTER_MAX_BYTES,
            )
    return created


async def _check_changelog_partitions(
    admin: AIOKafkaAdminClient, changelog: str, settings: Settings
) -> None:
    """Refuse a changelog of another partition count: it is another layout's state."""
    # Its partition N holds the states and clock of input partition N; under another count
    # they belong to other partitions, and Faust cannot write the ones past its end.
    for entry in await admin.describe_topics([changelog]):
        parts = entry["partitions"]
        if entry.get("error_code", 0) or not parts or len(parts) == settings.partitions:
            continue
        raise TopicLayoutError(
            f"topic {changelog} (the table changelog of KMG_APP_ID {settings.app_id!r}) has "
            f"{len(parts)} partitions, not {settings.partitions} (KMG_PARTITIONS): it holds "
            f"the state of a deployment with {len(parts)} partitions, so use another "
            f"KMG_APP_ID or set KMG_PARTITIONS={len(parts)}"
        )


async def max_message_bytes(admin: AIOKafkaAdminClient, topic: str) -> int | None:
    """Return the topic's max.message.bytes, None if the broker does not say."""
    responses = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    for response in responses:
        for error, _, _, _, entries in response.resources:
            for name, value, *_ in entries if not error else ():
                if name == "max.message.bytes":
                    return int(value)
    return None


async def _wait_until_served(bootstrap: str, names: list[str], partitions: dict[str, int]) -> None:
    """Return once the leaders of new partitions answer (metadata says so a little earlier).

    Listing the end offsets asks each partition's leader, and aiokafka retries it until the
    leader serves; producers then send without NotLeaderForPartition retries.
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, request_timeout_ms=15_000)
    await consumer.start()
    try:
        await consumer.end_offsets(
            [TopicPartition(n, p) for n in names for p in range(partitions[n])]
        )
    finally:
        await consumer.stop()


def owned_topics(settings: Settings, names: Iterable[str]) -> list[str]:
    """Return the names that are this deployment's: its prefix's and its app's (changelog)."""
    app = f"{settings.app_id}-"
    return sorted(n for n in names if n.startswith(settings.topic_prefix) or n.startswith(app))


class DeploymentInUse(RuntimeError):
    """The deployment's consumer group still has members: its workers run."""


# Error codes of a DeleteGroups answer (Kafka protocol).
_GROUP_GONE = frozenset({0, 69})  # deleted; GROUP_ID_NOT_FOUND
_GROUP_NOT_EMPTY = 68
_COORDINATOR_NOT_READY = 15  # also what a coordinator lookup that fails is taken as


async def delete_deployment(
    settings: Settings, wait_seconds: float = 90.0, *, group: bool = True
) -> list[str]:
    """Delete this deployment's consumer group and every topic of it; return the topics, gone.

    Irreversible: the inputs go too. The group goes first, with its committed offsets: kept,
    they would point workers of recreated topics past their ends. Raises DeploymentInUse, and
    deletes nothing, if a worker is still in the group after `wait_seconds`. Returns once the
    broker no longer lists the topics, so topics of the same names can be created at once.
    `group=False` leaves the group alone (its names are never used again; it expires).
    """
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=15_000
    )
    await admin.start()
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_seconds
        # Asked again until it is done: a coordinator is not ready for a while after the broker
        # starts, and a group keeps workers that have just stopped while it rebalances or until
        # their sessions expire.
        while (
            group and (code := await _delete_group_once(admin, settings.app_id)) not in _GROUP_GONE
        ):
            if loop.time() > deadline:
                if code == _GROUP_NOT_EMPTY:
                    raise DeploymentInUse(
                        f"consumer group {settings.app_id} has members: stop its workers first"
                    )
                raise TimeoutError(f"consumer group {settings.app_id} not deleted: error {code}")
            await asyncio.sleep(0.5)
        names = owned_topics(settings, await admin.list_topics())
        if names:
            await admin.delete_topics(names)
        while left := owned_topics(settings, await admin.list_topics()):
            if loop.time() > deadline:
                raise TimeoutError(f"topics still listed after deletion: {', '.join(left)}")
            await asyncio.sleep(0.2)
    finally:
        await admin.close()
    return names


async def _delete_group_once(admin: AIOKafkaAdminClient, group: str) -> int:
    try:
        return await delete_group(admin, group)
    except KafkaError:
        return _COORDINATOR_NOT_READY


async def delete_group(admin: AIOKafkaAdminClient, group: str) -> int:
    """Ask the group's coordinator to delete a consumer group; return the answer's error code."""
    # aiokafka's admin client has no delete_consumer_groups; the protocol request exists.
    from aiokafka.protocol.admin import DeleteGroupsRequest

    coordinator = await admin.find_coordinator(group)
    response = await admin._send_request(DeleteGroupsRequest([group]), coordinator)
    return int(dict(response.results)[group])
