"""The clients' sleeps, in one place so tests can skip real waiting."""

from __future__ import annotations

import asyncio
import time

sleep = time.sleep
asleep = asyncio.sleep
