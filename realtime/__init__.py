"""The live engine: sources, segmentation, health, privacy, the session and its front ends.

    from momke.realtime import LiveSession
    with LiveSession.demo(realtime=False) as session:
        for event in session.events():
            print(event.to_json())
"""

from .events import DroppedUtteranceEvent, EmotionEvent, Event, ReadyEvent, StatusEvent


def __getattr__(name: str):
    # LiveSession pulls in torch and the extractors: imported on first use, so the event types
    # stay cheap to import for front ends and tools that only read events.
    if name == "LiveSession":
        from .session import LiveSession

        return LiveSession
    raise AttributeError(f"module 'momke.realtime' has no attribute {name!r}")


__all__ = ["LiveSession", "EmotionEvent", "StatusEvent", "DroppedUtteranceEvent", "ReadyEvent", "Event"]
