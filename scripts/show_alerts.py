"""Print alerts from the alerts topic as they arrive, one line each, for a while.

Usage: python scripts/show_alerts.py SECONDS   (settings from KMG_* variables)
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter

import orjson
from aiokafka import AIOKafkaConsumer

from streams.settings import Settings


async def show(settings: Settings, seconds: float) -> Counter[str]:
    """Consume the alerts topic from the beginning for `seconds`; print and count alerts."""
    consumer = AIOKafkaConsumer(
        settings.topic_alerts,
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    counts: Counter[str] = Counter()
    await consumer.start()
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    alert = orjson.loads(record.value)
                    counts[f"{alert['rule']} {alert['status']}"] += 1
                    print(
                        f"{alert['at']}  {alert['status']:<8} {alert['severity']:<8} "
                        f"{alert['rule']:<22} {alert['location'] or '-':<8} "
                        f"{alert['resolution'] or ''}",
                        flush=True,
                    )
    finally:
        await consumer.stop()
    return counts


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 60.0
    try:
        counts = asyncio.run(show(Settings(), seconds))
    except KeyboardInterrupt:  # Ctrl-C ends the demo; the demo script cleans up
        sys.exit(130)
    print("alerts by rule and status:", dict(sorted(counts.items())) or "none yet")


if __name__ == "__main__":
    main()
