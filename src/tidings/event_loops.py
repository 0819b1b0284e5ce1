"""The event loop tidings' own loops run on (the outbound sender's, the campaign send loop):
uvloop where it is installed, as `tidings serve` runs the intake on it, else asyncio's.
uvloop's loop does the same work with less CPU per callback and socket event, which these
loops spend most of their time on."""

from __future__ import annotations

import asyncio

__all__ = ["new_event_loop"]


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A new event loop, uvloop's when it is installed."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard] on Linux
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
