"""Server-sent events: many listeners, one changing state, updates coalesced.

A listener does not get every change: it waits until the state's version moves past the one
it last sent, sends the state as it is then, and waits at least `min_interval` before the
next. So 200 votes in a second cost each listener at most 1 / min_interval messages, and a
slow phone never queues up stale tallies.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable

KEEPALIVE = 15.0  # seconds between comments on an idle stream (proxies close silent ones)


class Hub:
    def __init__(self, snapshot: Callable[[], dict], min_interval: float = 0.1):
        self.snapshot = snapshot
        self.min_interval = min_interval
        self.version = 0
        self._changed: asyncio.Event | None = None
        self.closing = False
        self._message: tuple[int, str] | None = None  # (version, the encoded event)

    def message(self) -> str:
        """The current state as one event, encoded once per version for every listener."""
        if self._message is None or self._message[0] != self.version:
            self._message = (self.version, f"data: {json.dumps(self.snapshot(), default=str)}\n\n")
        return self._message[1]

    def _event(self) -> asyncio.Event:
        if self._changed is None:
            self._changed = asyncio.Event()
        return self._changed

    def publish(self) -> None:
        """The state changed (call from the event loop's thread)."""
        self.version += 1
        ev = self._event()
        ev.set()
        self._changed = asyncio.Event()

    def close(self) -> None:
        """End every stream (the server is stopping)."""
        self.closing = True
        self.publish()

    def publish_threadsafe(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.call_soon_threadsafe(self.publish)

    async def stream(self, is_disconnected) -> AsyncIterator[str]:
        sent = -1
        while not self.closing:
            if sent != self.version:
                sent = self.version
                yield self.message()
                await asyncio.sleep(self.min_interval)
                continue
            try:
                await asyncio.wait_for(self._event().wait(), KEEPALIVE)
            except asyncio.TimeoutError:
                if await is_disconnected():
                    return
                yield ": keep-alive\n\n"


def sse_response(hub: Hub, request):
    from starlette.responses import StreamingResponse

    return StreamingResponse(
        hub.stream(request.is_disconnected),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
