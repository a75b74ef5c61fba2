"""Lab Streaming Layer outlets (`--emit lsl`): two streams on the local network, found by name.

    momke-emotion   type "Emotion", float32, one channel per label (the checkpoint's labels, in
                    its order; "score" for a sentiment checkpoint), irregular rate: one sample per
                    emotion event, the fused probabilities, stamped at the utterance's end
    momke-events    type "Markers", one string channel, irregular rate: every event's JSON (as
                    `--json` prints it), stamped at its time (an utterance's end, a status change)

Stamps are on the LSL clock (`pylsl.local_clock()`), so LabRecorder and other LSL tools line
them up with physiology and behaviour recorded beside them: a session time t is mapped to
local_clock() - session_now() + t, with both clocks read together at each event. Live (and in a
real-time replay) that is when the utterance ended; a fast replay's times are media times, so
its stamps run ahead of the LSL clock. Both streams carry the session's id as their source id,
and momke-emotion names its channels in the stream's description (channels/channel/label).
"""

from __future__ import annotations

from . import OutletError, SessionInfo, event_time


class LSLOutlet:
    name = "lsl"
    emotion_stream = "momke-emotion"
    marker_stream = "momke-events"

    def __init__(self) -> None:
        self.description = f"lsl ({self.emotion_stream}, {self.marker_stream})"
        self._emotion = self._markers = None
        self._labels: tuple[str, ...] = ()
        self._now = None
        self._clock = None

    def open(self, info: SessionInfo) -> None:
        try:
            import pylsl
        except Exception as error:  # the wheel bundles liblsl; a build without it fails at import
            raise OutletError(f"--emit lsl: pylsl cannot load liblsl ({error}); pip install --force-reinstall pylsl")\
                from error
        self._labels, self._now, self._clock = tuple(info.labels), info.now, pylsl.local_clock
        emotion = pylsl.StreamInfo(self.emotion_stream, "Emotion", len(self._labels), pylsl.IRREGULAR_RATE,
                                   pylsl.cf_float32, f"momke-{info.session_id}-emotion")
        channels = emotion.desc().append_child("channels")
        for label in self._labels:
            channel = channels.append_child("channel")
            channel.append_child_value("label", label)
            channel.append_child_value("unit", "probability")
        markers = pylsl.StreamInfo(self.marker_stream, "Markers", 1, pylsl.IRREGULAR_RATE, pylsl.cf_string,
                                   f"momke-{info.session_id}-events")
        self._emotion = pylsl.StreamOutlet(emotion)
        self._markers = pylsl.StreamOutlet(markers)

    def lsl_time(self, t: float | None) -> float:
        """A session time on the LSL clock (now, for None)."""
        now = self._clock()
        return now if t is None else now - self._now() + t

    def send(self, event) -> None:
        emotion, markers = self._emotion, self._markers
        if emotion is None or markers is None:
            return
        stamp = self.lsl_time(event_time(event))
        if event.type == "emotion":
            emotion.push_sample([float(event.probabilities.get(label, float("nan"))) for label in self._labels], stamp)
        markers.push_sample([event.to_json()], stamp)

    def close(self, timeout: float = 1.0) -> None:
        # pylsl destroys an outlet when its last reference goes (StreamOutlet.__del__): drop ours.
        self._emotion = self._markers = None
