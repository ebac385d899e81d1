"""Delete the previous demo's topics and consumer group, so that a demo starts afresh.

Usage: python scripts/reset_demo.py   (settings from KMG_* variables, set by scripts/demo)
"""

from __future__ import annotations

import asyncio
import sys

from streams.settings import Settings
from streams.topics import DeploymentInUse, delete_deployment


def main() -> None:
    try:
        names = asyncio.run(delete_deployment(Settings()))
    except DeploymentInUse as exc:
        sys.exit(f"demo: {exc} (is another demo running?)")
    print(f"deleted {len(names)} topics of the previous demo" + (":" if names else ""))
    for name in names:
        print(f"  {name}")


if __name__ == "__main__":
    main()
