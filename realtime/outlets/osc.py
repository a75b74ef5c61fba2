"""OSC over UDP (`--emit osc://HOST:PORT`): one message per fact, for Max/MSP, Pure Data,
TouchDesigner, Unity or SuperCollider patches. The address space (s = string, f = float32,
i = int32; probabilities in the order /momke/labels gives, the checkpoint's labels):

    /momke/labels            s...        the labels, once when the outlet opens and again when
                                         the session is ready
    /momke/ready             f           warm-up in ms: the session listens from now on
    /momke/emotion           s f...      an utterance's emotion: the top label, then the fused
                                         probability of every label
    /momke/modality/<m>      s f...      the same from one modality alone (<m>: audio, text,
                                         visual), for each modality the utterance used
    /momke/transcript        i s         utterance id and its words (when it has any)
    /momke/utterance         i f f       utterance id, start and end (seconds, session clock)
    /momke/dropped           i s         an utterance that got no emotion, and why
    /momke/status            s s s       a modality's state changed: modality, state (active,
                                         missing, disabled), reason ("" when none)

For one utterance the messages come in this order: /momke/emotion, /momke/modality/...,
/momke/transcript, /momke/utterance. UDP may drop or reorder datagrams on a busy network; on one
machine it does not in practice. A send that fails (an unreachable host) is logged, never raised.
"""

from __future__ import annotations

from . import OutletError, SessionInfo


class OSCOutlet:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, int(port)
        self.name = self.description = f"osc://{host}:{port}"
        self._client = None
        self._labels: tuple[str, ...] = ()

    def open(self, info: SessionInfo) -> None:
        from pythonosc.udp_client import SimpleUDPClient

        try:
            self._client = SimpleUDPClient(self.host, self.port)
        except OSError as error:  # an unknown host name
            raise OutletError(f"--emit {self.name}: {error}") from error
        self._labels = tuple(info.labels)
        self._client.send_message("/momke/labels", list(self._labels))

    def send(self, event) -> None:
        client = self._client
        if client is None:
            return
        for address, arguments in self.messages(event):
            client.send_message(address, arguments)

    def messages(self, event) -> list[tuple[str, list]]:
        """The OSC messages (address, arguments) for one event, in the order they are sent."""
        if event.type == "emotion":
            messages = [("/momke/emotion", [event.label, *self._row(event.probabilities)])]
            for modality, probabilities in event.modality_probabilities.items():
                top = max(probabilities, key=probabilities.get) if probabilities else ""
                messages.append((f"/momke/modality/{modality}", [top, *self._row(probabilities)]))
            if event.transcript:
                messages.append(("/momke/transcript", [int(event.utterance_id), event.transcript]))
            messages.append(("/momke/utterance", [int(event.utterance_id), float(event.start), float(event.end)]))
            return messages
        if event.type == "status":
            return [("/momke/status", [event.modality, event.state, event.reason or ""])]
        if event.type == "ready":
            return [("/momke/labels", list(self._labels)), ("/momke/ready", [float(event.warmup_ms)])]
        if event.type == "dropped":
            return [("/momke/dropped", [int(event.utterance_id), event.reason])]
        return []

    def _row(self, probabilities: dict) -> list[float]:
        return [float(probabilities.get(label, float("nan"))) for label in self._labels]

    def close(self, timeout: float = 1.0) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()
