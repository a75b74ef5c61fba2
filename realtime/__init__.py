"""The live engine: sources, segmentation, health, privacy and the session (front ends: ui/).

    from momke.realtime import LiveSession
    with LiveSession.demo(realtime=False) as session:
        for event in session.events():
            print(event.to_json())
"""

_EVENT_TYPES = ("DroppedUtteranceEvent", "EmotionEvent", "Event", "LanguageEvent", "ReadyEvent", "StatusEvent")


def __getattr__(name: str):
    # Everything is imported on first use: LiveSession pulls in torch and the extractors, and
    # `momke-live --help` (or a Ctrl-C right after start) should not wait for even the event types.
    if name == "LiveSession":
        from .session import LiveSession

        return LiveSession
    if name == "LiveOptions":
        from .options import LiveOptions

        return LiveOptions
    if name == "DeviceUnavailable":
        from .sources.devices import DeviceUnavailable

        return DeviceUnavailable
    if name in _EVENT_TYPES:
        from . import events

        return getattr(events, name)
    raise AttributeError(f"module 'momke.realtime' has no attribute {name!r}")


__all__ = ["DeviceUnavailable", "DroppedUtteranceEvent", "EmotionEvent", "Event", "LanguageEvent", "LiveOptions", "LiveSession", "ReadyEvent",
           "StatusEvent"]
