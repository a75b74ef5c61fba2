"""Outlets (`--emit`): the bundled demo replayed by `momke-live` as users run it, received by real
clients of each protocol (a pylsl inlet, a python-osc server, a websockets client); every
emotion event arrives once and in order, with the same content as the --json line. Plus: spec
errors and a missing package (exit 2 before any model loads), a port in use, a WebSocket client
that stops reading (dropped and counted, the others served, nothing waits), no thread left."""

from __future__ import annotations

import ast
import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from itertools import pairwise

import pytest
from frontend_support import REPO, demo_transcript, free_port

README = (REPO / "README.md").read_text()

pylsl = pytest.importorskip("pylsl")
pytest.importorskip("pythonosc")
pytest.importorskip("websockets")

from momke.realtime.outlets import OutletError, OutletSpec, parse_outlet, parse_outlets
from momke.realtime.outlets.websocket import WebSocketOutlet


def outlet_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("momke-") and t.is_alive()]


# ------------------------------------------------------------------------------------- specs
def test_specs_parse_and_bad_ones_say_the_forms():
    assert parse_outlets(["lsl", "osc://127.0.0.1:9000", "ws://localhost:0"]) == [
        OutletSpec("lsl"), OutletSpec("osc", "127.0.0.1", 9000), OutletSpec("ws", "localhost", 0)]
    for bad, says in [("udp://x:1", "expected lsl, osc://HOST:PORT"), ("osc://127.0.0.1", "give a host and a port"),
                      ("osc://127.0.0.1:0", "give a host and a port"), ("ws://h:99999", "give a host and a port"),
                      ("ws://h:1/path", "expected")]:
        with pytest.raises(OutletError, match=says):
            parse_outlet(bad)
    with pytest.raises(OutletError, match="given twice"):
        parse_outlets(["lsl", "LSL"])


def test_a_missing_package_is_named_with_exit_2_before_the_model_loads(monkeypatch, capsys):
    import importlib.util

    from momke.realtime.ui import cli

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "pylsl" else real(name, *a))
    began = time.monotonic()
    assert cli.main(["--demo", "--emit", "lsl"]) == 2
    assert "pip install pylsl" in capsys.readouterr().err
    assert time.monotonic() - began < 5


# ------------------------------------------------------------------------------------- the demo, received
class Receivers:
    """A pylsl inlet per stream, an OSC server and a WebSocket client, all listening on threads
    while `momke-live` runs; each keeps what it received, in order."""

    def __init__(self, ws_port: int) -> None:
        from pythonosc.dispatcher import Dispatcher
        from pythonosc.osc_server import BlockingOSCUDPServer

        self.osc, self.ws, self.samples, self.markers, self.info = [], [], [], [], {}
        dispatcher = Dispatcher()
        dispatcher.set_default_handler(lambda address, *args: self.osc.append((address, list(args))))
        # One handler thread, so the messages are kept in the order they came.
        self.osc_server = BlockingOSCUDPServer(("127.0.0.1", 0), dispatcher)
        self.osc_port = self.osc_server.server_address[1]
        self.ws_url = f"ws://127.0.0.1:{ws_port}"
        self.done = threading.Event()
        self.threads = [threading.Thread(target=self.osc_server.serve_forever, daemon=True),
                        threading.Thread(target=self._websocket, daemon=True),
                        threading.Thread(target=self._lsl, args=("momke-emotion", self.samples), daemon=True),
                        threading.Thread(target=self._lsl, args=("momke-events", self.markers), daemon=True)]
        for thread in self.threads:
            thread.start()

    def _websocket(self) -> None:
        from websockets.exceptions import ConnectionClosed
        from websockets.sync.client import connect

        deadline = time.monotonic() + 120
        while not self.done.is_set() and time.monotonic() < deadline:
            try:
                with connect(self.ws_url, open_timeout=2) as connection:
                    try:
                        for message in connection:  # ends when the server closes normally
                            self.ws.append(message)
                    except ConnectionClosed:
                        self.ws.append("<closed abnormally>")
                    return
            except OSError:  # not listening yet: the model is loading
                time.sleep(0.05)

    def _lsl(self, name: str, into: list) -> None:
        streams = pylsl.resolve_byprop("name", name, timeout=120)
        if not streams:
            return
        inlet = pylsl.StreamInlet(streams[0])
        info = inlet.info(timeout=10)
        self.info[name] = info
        inlet.open_stream(timeout=10)
        while not (self.done.is_set() and not inlet.samples_available()):
            sample, stamp = inlet.pull_sample(timeout=0.2)
            if sample is not None:
                into.append((sample, stamp))

    def stop(self) -> None:
        self.done.set()
        for thread in self.threads[1:]:
            thread.join(10)
        self.osc_server.shutdown()
        self.osc_server.server_close()


def readme_consumers() -> dict[str, str]:
    """The README's consumer examples ("Sending events to other tools"), by language or protocol."""
    start = README.index("## Sending events to other tools")
    section = README[start:README.index("\n## ", start + 1)]
    blocks = re.findall(r"```(python|javascript)\n(.*?)```", section, flags=re.DOTALL)
    found = {}
    for language, code in blocks:
        found["lsl" if "pylsl" in code else "osc" if "pythonosc" in code else language] = code
    assert set(found) == {"lsl", "osc", "javascript"}, found.keys()
    return found


@pytest.fixture(scope="module")
def emitted_demo():
    """`momke-live --demo --fast --json` with all three outlets, received by the test's own
    clients and by the README's consumer examples (the OSC one on a free port; the browser
    snippet in Node, its `document` a stand-in that prints the title it is given)."""
    ws_port, osc_readme_port = free_port(), free_port()
    receivers = Receivers(ws_port)
    examples = readme_consumers()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    consumers = {
        "lsl": subprocess.Popen([sys.executable, "-c", examples["lsl"]], stdout=subprocess.PIPE, text=True, env=env),
        "osc": subprocess.Popen([sys.executable, "-c", examples["osc"].replace("9000", str(osc_readme_port))],
                                stdout=subprocess.PIPE, text=True, env=env),
    }
    command = [sys.executable, "-m", "momke.realtime.ui.cli", "--demo", "--fast", "--json", "--device", "cpu",
               "--emit", "lsl", "--emit", f"osc://127.0.0.1:{receivers.osc_port}", "--emit", receivers.ws_url,
               "--emit", f"osc://127.0.0.1:{osc_readme_port}"]
    cli = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    stderr, listening = [], threading.Event()

    def read_stderr():
        for line in cli.stderr:
            stderr.append(line)
            if "sending events to" in line:
                listening.set()

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    if shutil.which("node") and listening.wait(240):  # a browser page opened once the server listens
        shim = "globalThis.document = { set title(value) { console.log(value); } };\n"
        script = shim + examples["javascript"].replace("8765", str(ws_port))
        consumers["javascript"] = subprocess.Popen(["node", "--experimental-websocket", "-e", script],
                                                   stdout=subprocess.PIPE, text=True)
    stdout = cli.stdout.read()
    cli.wait(240)
    reader.join(10)
    receivers.stop()
    printed = {}
    for name, consumer in consumers.items():
        if name != "javascript":  # the Python examples listen for ever: stop them
            time.sleep(0.5)
            consumer.terminate()
        printed[name] = consumer.communicate(timeout=30)[0].splitlines()
    result = subprocess.CompletedProcess(command, cli.returncode, stdout, "".join(stderr))
    return result, receivers, printed


def stdout_events(result) -> list[dict]:
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_the_cli_says_where_it_sends(emitted_demo):
    result, receivers, _ = emitted_demo
    assert "sending events to lsl (momke-emotion, momke-events), osc://127.0.0.1:" in result.stderr
    assert receivers.ws_url in result.stderr


def test_lsl_inlets_receive_every_emotion_once_in_order_on_the_lsl_clock(emitted_demo):
    result, receivers, _ = emitted_demo
    events = stdout_events(result)
    emotions = [e for e in events if e["type"] == "emotion"]
    assert len(emotions) == len(demo_transcript())
    info = receivers.info["momke-emotion"]
    labels = list(emotions[0]["probabilities"])
    assert info.channel_count() == len(labels) and info.nominal_srate() == pylsl.IRREGULAR_RATE
    channel, names = info.desc().child("channels").child("channel"), []
    while not channel.empty():
        names.append(channel.child_value("label"))
        channel = channel.next_sibling()
    assert names == labels
    assert len(receivers.samples) == len(emotions)
    for (sample, _), event in zip(receivers.samples, emotions):
        assert sample == pytest.approx([event["probabilities"][label] for label in labels], abs=1e-6)
    # Stamped at each utterance's end: the stamps are as far apart as the ends.
    stamps = [stamp for _, stamp in receivers.samples]
    ends = [e["end"] for e in emotions]
    assert [b - a for a, b in pairwise(stamps)] == pytest.approx([b - a for a, b in pairwise(ends)], abs=0.02)
    # The marker stream: each event's JSON, the emotions among them once and in order, stamped alike.
    markers = [json.loads(sample[0]) for sample, _ in receivers.markers]
    assert markers == events[len(events) - len(markers):]
    assert [m for m in markers if m["type"] == "emotion"] == emotions
    marker_stamps = [stamp for (sample, stamp) in receivers.markers if json.loads(sample[0])["type"] == "emotion"]
    assert marker_stamps == pytest.approx(stamps, abs=0.02)


def test_osc_server_receives_every_emotion_and_status_in_order(emitted_demo):
    result, receivers, _ = emitted_demo
    events = stdout_events(result)
    labels = list(next(e for e in events if e["type"] == "emotion")["probabilities"])
    assert receivers.osc[0] == ("/momke/labels", labels)  # sent when the outlet opens
    emotion_messages = [args for address, args in receivers.osc if address == "/momke/emotion"]
    expected = [[e["label"], *(e["probabilities"][label] for label in labels)]
                for e in events if e["type"] == "emotion"]
    assert len(emotion_messages) == len(expected) == len(demo_transcript())
    for got, want in zip(emotion_messages, expected):
        assert got[0] == want[0] and got[1:] == pytest.approx(want[1:], abs=1e-6)  # float32 on the wire
    statuses = [args for address, args in receivers.osc if address == "/momke/status"]
    assert statuses == [[e["modality"], e["state"], e["reason"]] for e in events if e["type"] == "status"]
    utterances = [args for address, args in receivers.osc if address == "/momke/utterance"]
    assert [u[0] for u in utterances] == [e["utterance_id"] for e in events if e["type"] == "emotion"]
    transcripts = [args[1] for address, args in receivers.osc if address == "/momke/transcript"]
    assert transcripts == [e["transcript"] for e in events if e["type"] == "emotion" and e["transcript"]]
    ready = [args for address, args in receivers.osc if address == "/momke/ready"]
    assert len(ready) == 1


def test_websocket_client_receives_the_json_lines_once_in_order(emitted_demo):
    result, receivers, _ = emitted_demo
    lines = result.stdout.splitlines()
    assert receivers.ws and "<closed abnormally>" not in receivers.ws  # a normal close at the end
    # It connected while the model loaded: from then on, exactly the --json lines.
    assert receivers.ws == lines[len(lines) - len(receivers.ws):]
    emotions = [line for line in receivers.ws if json.loads(line)["type"] == "emotion"]
    assert emotions == [line for line in lines if json.loads(line)["type"] == "emotion"]
    assert len(emotions) == len(demo_transcript())


def test_the_readmes_consumer_examples_print_every_emotion(emitted_demo):
    result, _, printed = emitted_demo
    emotions = [e for e in stdout_events(result) if e["type"] == "emotion"]
    labels = list(emotions[0]["probabilities"])
    # LSL: "stamp {label: p, ...}" per utterance
    lsl = [line for line in printed["lsl"] if "{" in line]
    assert len(lsl) == len(emotions)
    for line, event in zip(lsl, emotions):
        assert list(ast.literal_eval(line.split(" ", 1)[1])) == labels
    # OSC: "label (p, ...)" per utterance, beside the status lines
    osc = [line.split(" ")[0] for line in printed["osc"] if line.split(" ")[0] in labels and "(" in line]
    assert osc == [e["label"] for e in emotions]
    if "javascript" not in printed:
        pytest.skip("node is not installed: the browser snippet was not run")
    def js_round(x: float) -> int:  # Math.round (Python's round() halves to even)
        return math.floor(x + 0.5)

    assert printed["javascript"] == [f"{e['label']} ({js_round(100 * e['probabilities'][e['label']])} %)"
                                     for e in emotions]


# ------------------------------------------------------------------------------------- failures
def test_a_port_in_use_is_refused_at_start_with_exit_2():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        outlet = WebSocketOutlet("127.0.0.1", port)
        with pytest.raises(OutletError, match="cannot listen"):
            outlet.open()
    assert outlet_threads() == []


def test_a_port_in_use_stops_the_cli_with_exit_2_and_says_so(capsys):
    from momke.realtime.ui import cli

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = cli.main(["--demo", "--fast", "--plain", "--device", "cpu", "--emit", f"ws://127.0.0.1:{port}"])
    assert code == 2
    assert f"--emit ws://127.0.0.1:{port}: cannot listen" in capsys.readouterr().err
    assert outlet_threads() == []


def test_emit_is_refused_with_gradio(capsys):
    from momke.realtime.ui import cli

    assert cli.main(["--gradio", "--emit", "lsl"]) == 2
    assert "--emit applies to the terminal app" in capsys.readouterr().err


def test_a_client_that_stops_reading_loses_events_without_holding_anyone_up():
    from websockets.sync.client import connect

    outlet = WebSocketOutlet("127.0.0.1", 0, queue_size=16)
    outlet.open()
    url, received, lines = outlet.url, [], [json.dumps({"n": n, "pad": "x" * 65_536}) for n in range(400)]
    # The stalled client: a tiny receive buffer, and it never reads.
    stalled_socket = socket.create_connection(("127.0.0.1", outlet.port))
    stalled_socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled = connect(url, sock=stalled_socket, max_size=None)

    def read_all():
        with connect(url, max_size=None) as connection:
            received.extend(connection)

    reader = threading.Thread(target=read_all, daemon=True)
    reader.start()
    deadline = time.monotonic() + 10
    while outlet.clients < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert outlet.clients == 2
    longest = 0.0
    for line in lines:
        began = time.perf_counter()
        outlet.send_line(line)  # what the session's event thread calls
        longest = max(longest, time.perf_counter() - began)
        time.sleep(0.002)
    outlet.close(timeout=2.0)
    reader.join(10)
    stalled.close_socket()
    assert received == lines  # the reading client got everything, in order
    assert outlet.dropped > 0  # the stalled one lost events, counted
    assert longest < 0.05  # a send never waits on a client
    assert outlet_threads() == []
