"""The transport floor: a plain aiokafka consume-then-produce loop, run as its own process.

Usage: python scripts/bench_transport.py --group G --output TOPIC INPUT [INPUT ...]

It consumes the input topics from the start in a consumer group, sends every value (with its
key, to the same partition number) to the output topic with the worker's producer settings
(acks=all, 5 ms linger), waits for the acknowledgements and commits, batch after batch, until
SIGTERM. It prints `first <epoch seconds>` when the first records arrive, so the caller can
time it like a worker: from the first consumed record until the group's committed offsets
reach the end of the inputs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer


async def relay(bootstrap: str, group: str, inputs: list[str], output: str) -> int:
    """Copy the inputs to `output` until SIGTERM; return the number of records copied."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    consumer = AIOKafkaConsumer(
        *inputs,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await consumer.start()
    await producer.start()
    copied = 0
    try:
        while not stopping.is_set():
            batches = await consumer.getmany(timeout_ms=200)
            if not batches:
                continue
            if not copied:
                print(f"first {time.time():.6f}", flush=True)
            pending: list[asyncio.Future[Any]] = []
            for tp, records in batches.items():
                for r in records:
                    pending.append(
                        await producer.send(output, r.value, key=r.key, partition=tp.partition)
                    )
            await asyncio.gather(*pending)
            await consumer.commit()
            copied += len(pending)
    finally:
        await consumer.stop()
        await producer.stop()
    return copied


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inputs", nargs="+")
    parser.add_argument("--group", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument(
        "--bootstrap", default=os.environ.get("KMG_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    )
    args = parser.parse_args()
    copied = asyncio.run(relay(args.bootstrap, args.group, args.inputs, args.output))
    print(f"copied {copied}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
