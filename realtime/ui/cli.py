"""`momke-live`: live emotion recognition in the terminal (or as JSON lines for other programs).

    momke-live                  the attached microphone (+ camera when there is one)
    momke-live --demo           replay the bundled demo conversation (no devices needed)
    momke-live --input talk.mp4 --transcript talk.json --fast --json
    momke-live --gradio         the browser demo (see gradio_app.py)

Exit codes (scripts may rely on them):
    0    finished (a replay ran to its end, SIGTERM, or the reader of --json closed the pipe)
    1    runtime error (the engine failed, a modality failed: its extractor failed on 3
         utterances in a row, or a replay produced no utterance at all)
    2    usage error, bad input (file, checkpoint, transcript), an enabled modality's weights
         missing or altered (the message names the pip packages), or no device to listen to
    3    a replay was incomplete: damaged parts of the file were skipped (the rest was scored)
    130  stopped with Ctrl-C (after a clean shutdown and the summary; a second Ctrl-C during the
         shutdown exits at once, still 130)

Only the standard library is imported before the arguments are parsed: `--help`, `--version`
and usage errors answer at once; torch and the engine load afterwards.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from pathlib import Path

from ...models.cli_common import (  # shared with `momke`; standard library only
    OneLineErrorParser,
    UsageProblem,
    VersionAction,
    check_file,
    check_output_file,
    discard_stdout,
)
from ..transcript_gate import (  # standard library only
    DEFAULT_MIN_TRANSCRIPT_CONFIDENCE,
    check_confidence_threshold,
)

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INCOMPLETE, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

# models.config.MODALITIES, repeated here so parsing --privacy needs no torch (a test keeps them equal).
MODALITIES = ("audio", "text", "visual")
ASR_CHOICES = ("auto", "whisper", "whisper-tiny", "whisper-base", "pocketsphinx", "none")

NO_DEVICE_HELP = (
    "momke-live: {why}.\n"
    "To try it without a microphone or camera, replay the bundled demo conversation:\n"
    "    momke-live --demo\n"
    "or replay a recording of your own:  momke-live --input FILE [--transcript FILE.json]"
)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
        prog="momke-live",
        description="Live multimodal emotion recognition (MoMKE) from microphone, camera and speech-to-text.",
        epilog="Exit codes: 0 finished, 1 runtime error, 2 usage error / no device, 3 replay incomplete "
               "(damaged file), 130 Ctrl-C.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action=VersionAction)
    src = parser.add_argument_group("input (default: the attached microphone and camera)")
    src.add_argument("--demo", action="store_true", help="replay the bundled demo conversation (no devices needed)")
    src.add_argument("--input", metavar="FILE", type=Path, help="replay a video (with audio) or audio file as if live")
    src.add_argument("--transcript", metavar="FILE", type=Path,
                     help='transcript of --input: JSON [{"start": s, "end": s, "text": "..."}]')
    src.add_argument("--fast", action="store_true", help="replay as fast as possible instead of in real time")
    src.add_argument("--no-mic", action="store_true", help="do not use a microphone")
    src.add_argument("--no-camera", action="store_true", help="do not use a camera")
    src.add_argument("--mic", metavar="DEVICE", default="default",
                     help="microphone: a device number or name (default: the system's)")
    src.add_argument("--camera", metavar="INDEX|URL", default="0", help="camera number or stream URL (default 0)")

    model = parser.add_argument_group("model and processing")
    model.add_argument("--privacy", metavar="MODS", default="",
                       help="comma-separated modalities to switch off (audio,text,visual): not captured, not kept")
    model.add_argument("--checkpoint", metavar="DIR", type=Path, help="MoMKE checkpoint directory (default: the shipped one)")
    model.add_argument("--accept-modified-checkpoint", action="store_true",
                       help="load a checkpoint whose weights no longer match the sha256 recorded when it was saved")
    model.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="where the model runs (default auto)")
    model.add_argument("--asr", metavar="SPEC", default="auto",
                       help="speech-to-text: whisper-tiny, whisper-base, pocketsphinx, none, or whisper:DIR "
                            "(a local Whisper model); auto (default) = none when a transcript is given, "
                            "else whisper (Whisper base on a CUDA GPU, tiny.en on a CPU)")
    model.add_argument("--language", metavar="CODE", default="en",
                       help="language spoken, for speech-to-text (default en; another language uses the "
                            "multilingual Whisper base; auto = detected once, on the first utterance of 1.5 s or more)")
    model.add_argument("--min-transcript-confidence", metavar="X", type=_unit_float,
                       help="speech-to-text words less sure than X (0-1) are shown as unsure but not used for emotion "
                            f"(default {DEFAULT_MIN_TRANSCRIPT_CONFIDENCE:g}; 0 uses every transcript; a given transcript is always used)")
    model.add_argument("--asr-timeout-factor", metavar="X", type=_positive_float,
                       help="give up on a transcript after X times the utterance's length (default: the engine's)")

    out = parser.add_argument_group("output")
    out.add_argument("--json", action="store_true", help="one JSON event per line on stdout (nothing else on stdout)")
    out.add_argument("--plain", action="store_true", help="one text line per event instead of the live view")
    out.add_argument("--log", metavar="FILE", type=Path, help="also append every event to FILE as JSON lines")
    out.add_argument("--emit", metavar="OUTLET", action="append", default=[],
                     help="also send every event to other programs (repeatable): lsl (Lab Streaming Layer "
                          "streams momke-emotion and momke-events), osc://HOST:PORT (OSC over UDP) or "
                          "ws://HOST:PORT (a WebSocket server, the --json lines)")
    out.add_argument("-v", "--verbose", action="store_true", help="debug logging and tracebacks on stderr")

    web = parser.add_argument_group("browser demo")
    web.add_argument("--gradio", action="store_true", help="serve the Gradio live demo instead of the terminal view")
    web.add_argument("--host", metavar="ADDRESS", default="127.0.0.1",
                     help="address to serve on (default 127.0.0.1: this machine only)")
    web.add_argument("--port", metavar="PORT", type=int, default=7860,
                     help="port to serve on (default 7860; 0 = any free port)")
    web.add_argument("--max-sessions", metavar="N", type=int, default=4,
                     help="visitors' sessions running at once (default 4)")
    return parser


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _unit_float(text: str) -> float:
    try:
        return check_confidence_threshold(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number from 0 to 1, got {text}") from None


def parse_privacy(value: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(p.strip().lower() for p in value.split(",") if p.strip()))
    unknown = [n for n in names if n not in MODALITIES]
    if unknown:
        raise UsageProblem(f"--privacy: unknown modality {', '.join(unknown)} (choose from {','.join(MODALITIES)})")
    return names


def check_log(path: Path | None) -> None:
    """--log is a file to append to: refuse a directory (or a file in place of its folder) now,
    before minutes of model loading."""
    if path is not None:
        check_output_file("--log", path, "events.jsonl")


def check_asr(spec: str) -> None:
    if spec in ASR_CHOICES:
        return
    if spec.startswith("whisper:"):
        folder = Path(spec.split(":", 1)[1])
        if not folder.is_dir():
            raise UsageProblem(f"--asr {spec}: {folder} is not a folder (a local Whisper model)")
        return
    raise UsageProblem(f"--asr: unknown {spec!r} (choose from {', '.join(ASR_CHOICES)}, or whisper:DIR)")


def source_kwargs(args, disabled: tuple[str, ...] = ()) -> tuple[dict, str]:
    """LiveSession keyword arguments for the chosen input, and a short description of it.
    A modality switched off by --privacy is not probed: its device is never opened."""
    if args.demo and args.input:
        raise UsageProblem("give either --demo or --input, not both")
    if args.transcript and not args.input:
        raise UsageProblem("--transcript goes with --input")
    pace = "fast replay" if args.fast else "real-time replay"
    asked_asr = args.asr not in ("auto", "none")  # the user asked for speech-to-text: it gives the words
    if args.demo and asked_asr:
        return ({"demo": True, "realtime": not args.fast, "transcript": None},
                f"demo conversation ({pace}), words by --asr {args.asr}, not the demo's transcript")
    if args.demo:
        return {"demo": True, "realtime": not args.fast}, f"demo conversation ({pace})"
    if args.transcript and asked_asr:
        raise UsageProblem(f"give --transcript or --asr {args.asr}, not both: each gives the words said")
    if args.input:
        check_file("--input", args.input, "a video or audio file")
        if args.transcript:
            check_file("--transcript", args.transcript, "a JSON transcript file")
        kwargs = {"input_file": args.input, "realtime": not args.fast}
        if args.transcript:
            kwargs["transcript"] = args.transcript
        return kwargs, f"{args.input.name} ({pace})"
    if args.fast:
        raise UsageProblem("--fast only applies to a replay (--demo or --input)")

    from .device_probe import parse_camera, probe_camera, probe_microphone

    kwargs, found, why = {}, [], []
    if not args.no_mic:
        mic = probe_microphone(args.mic)
        if mic.found:
            kwargs["microphone"] = args.mic
            found.append(f"mic: {mic.detail}")
        else:
            why.append(f"no microphone ({mic.detail})")
    if "visual" in disabled:
        found.append("camera off (--privacy visual)")
    elif not args.no_camera:
        camera_source = parse_camera(args.camera)
        cam = probe_camera(camera_source)
        if cam.found:
            kwargs["camera"] = camera_source
            found.append(cam.detail)
        else:
            why.append(f"no camera ({cam.detail})")
    if "microphone" not in kwargs:
        # Utterances are found by voice activity: with no microphone there is nothing to segment.
        reason = "; ".join(why) if why else "the microphone is switched off (--no-mic)"
        raise UsageProblem(NO_DEVICE_HELP.format(why=reason))
    return kwargs, "live: " + ", ".join(found)


def check_device(device: str) -> None:
    from ...extractors.runtime import pick_device

    try:
        pick_device(device)
    except ValueError as error:
        raise UsageProblem(f"--device {device}: {error}") from error


# What a visitor should know before reading the demo's labels (assets/demo/SOURCE.md has the table).
DEMO_VOICE_NOTE = ("momke-live: the demo's voice is a speech synthesiser (espeak-ng); the voice path learnt from human "
                   "voices and misreads it, so the fused label often follows the voice, not the words. Each line's "
                   "words (and the face, when one is in view) say what it means: --privacy audio leaves the voice out "
                   "(assets/demo/SOURCE.md)")


def live_options(args, source: dict, disabled: tuple[str, ...] = ()):
    """The session's LiveOptions: the source (source_kwargs) with the model, ASR and log options."""
    from ..options import LiveOptions

    settings = {"checkpoint": args.checkpoint, "device": None if args.device == "auto" else args.device,
                "log_path": args.log, "disabled": disabled, "emit": tuple(args.emit or ()),
                "accept_modified_checkpoint": bool(args.accept_modified_checkpoint), "asr_language": args.language}
    if args.asr != "auto":
        settings["asr"] = None if args.asr == "none" else args.asr
    elif source.get("demo") or source.get("transcript"):
        settings["asr"] = None  # the transcript gives the words
    # else: the engine's default speech-to-text
    for name in ("asr_timeout_factor", "min_transcript_confidence"):
        if getattr(args, name) is not None:  # left out: the session's default
            settings[name] = getattr(args, name)
    settings.update(source)
    if settings.pop("demo", False):
        return LiveOptions.demo(**settings)
    return LiveOptions(**settings)


def make_session(args, source: dict, disabled: tuple[str, ...]):
    from ..session import LiveSession

    return LiveSession(options=live_options(args, source, disabled))


class _JsonOut:
    """stdout for events only: C libraries or stray prints that write to stdout go to stderr."""

    def __init__(self) -> None:
        try:
            fd = sys.stdout.fileno()
        except (AttributeError, OSError, ValueError):  # no real stdout (embedded, tests): use it as is
            self.stream = sys.stdout
            return
        sys.stdout.flush()
        self._restore = (fd, os.dup(fd), sys.stdout)
        self.stream = os.fdopen(os.dup(fd), "w", encoding="utf-8", buffering=1)
        os.dup2(sys.stderr.fileno(), fd)
        sys.stdout = sys.stderr

    def write(self, line: str) -> None:
        self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        """Give stdout back (matters when main() runs inside a host program)."""
        restore = getattr(self, "_restore", None)
        if restore is None:
            return
        fd, saved, stdout = restore
        self._restore = None
        try:
            self.stream.close()
        except BrokenPipeError:
            pass
        os.dup2(saved, fd)
        os.close(saved)
        sys.stdout = stdout


def run(session, args, description: str) -> int:
    from .live_state import LiveState, format_summary

    state = LiveState()
    began = time.monotonic()
    interrupted: KeyboardInterrupt | None = None
    reader_gone = False
    json_out = _JsonOut() if args.json else None
    try:
        session.start()
        if getattr(session, "outlets", ""):
            print(f"momke-live: sending events to {session.outlets}", file=sys.stderr, flush=True)
        show_events(session, state, args, description, json_out)
    except KeyboardInterrupt as stop:
        interrupted = stop
    except BrokenPipeError:  # the program reading our output went away: a normal way to stop
        reader_gone = True
    finally:
        with _interrupts_exit_at_once():
            session.stop()
            join = getattr(session, "join", None)
            if join is not None:  # the process ends next: not under a native load or extraction
                join(timeout=60)
        if json_out is not None:
            json_out.close()
        if reader_gone:
            discard_stdout()
    summary = state.summary(wall_s=time.monotonic() - began)
    summary["fast_replay"] = bool(args.fast)
    _print_quietly(format_summary(summary), sys.stderr if args.json or reader_gone else sys.stdout)
    if interrupted is not None:
        return EXIT_OK if isinstance(interrupted, _Terminated) else EXIT_INTERRUPTED
    if reader_gone:
        return EXIT_OK
    failures = getattr(session, "failures", None) or {}
    if failures:  # a modality's extractor kept failing: its readings are missing from the events
        for modality, why in failures.items():
            print(f"momke-live: the {modality} modality failed ({why}); the events lack its readings", file=sys.stderr)
        return EXIT_ERROR
    if getattr(session, "replay_complete", None) is False:  # engines that report decode damage
        problems = "; ".join(getattr(session, "replay_problems", None) or []) or "damaged data"
        print(f"momke-live: the replay was incomplete ({problems}); what could be decoded was scored",
              file=sys.stderr)
        return EXIT_INCOMPLETE
    if not session.live and summary["utterances"] == 0 and summary["dropped"] == 0:
        print("momke-live: the replay produced no utterance (no speech found, or the file could not be read)",
              file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK


def show_events(session, state, args, description: str, json_out: _JsonOut | None) -> None:
    """Until the session ends: each event as a JSON line, in the live view, or as a plain line."""
    if json_out is not None:
        for event in session.events():
            state.update(event)
            json_out.write(event.to_json())
    elif not args.plain and sys.stdout.isatty():
        from .terminal_view import TerminalView

        with TerminalView(state, header=f"momke-live · {description}") as view:
            for event in session.events():
                view.update(event)
    else:
        from .terminal_view import event_line

        for event in session.events():
            state.update(event)
            print(event_line(event), flush=True)


def _print_quietly(text: str, stream) -> None:
    try:
        print(text, file=stream, flush=True)
    except BrokenPipeError:
        if stream is sys.stdout:
            discard_stdout()


class _interrupts_exit_at_once:
    """While the session shuts down, a second Ctrl-C (or SIGTERM) exits at once, without a
    traceback, instead of interrupting the shutdown half-way."""

    def __enter__(self):
        self._previous = {}
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, _exit_now)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def _exit_now(signum, frame):
    os.write(2, b"momke-live: stopped before the shutdown finished\n")
    os._exit(EXIT_INTERRUPTED if signum == signal.SIGINT else EXIT_OK)


def _sigterm_as_interrupt(signum, frame):
    raise _Terminated()


class _Terminated(KeyboardInterrupt):
    """SIGTERM: stop as cleanly as Ctrl-C, but exit 0 (a service manager asked us to)."""


def main(argv: list[str] | None = None) -> int:
    launched = time.monotonic()  # a real-time replay plays from here, while torch and the models load
    try:
        args = build_parser().parse_args(argv)  # argparse itself exits 2 on a usage error
        args.launched = launched
        import logging

        logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, stream=sys.stderr,
                            format="%(levelname)s %(name)s: %(message)s")
        if args.verbose:  # FFmpeg's messages about damaged data too (else summed up in one line)
            logging.getLogger("libav").setLevel(logging.DEBUG)
        if threading.current_thread() is not threading.main_thread():  # embedded: signals are the host's
            return _main(args)
        previous = signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
        try:
            return _main(args)
        finally:
            signal.signal(signal.SIGTERM, previous)
    except KeyboardInterrupt as stop:  # at any moment: while importing torch, loading, or shutting down
        return EXIT_OK if isinstance(stop, _Terminated) else EXIT_INTERRUPTED


def _main(args) -> int:
    import logging

    log = logging.getLogger("momke.live")
    try:
        disabled = parse_privacy(args.privacy)
        check_log(args.log)
        check_asr(args.asr)
        from ..outlets import parse_outlets  # standard library only: a missing package is named now

        parse_outlets(args.emit)
        if args.gradio:
            from .gradio_app import launch, server_options

            if args.emit:
                raise UsageProblem("--emit applies to the terminal app, not to --gradio")

            if args.max_sessions < 1:
                raise UsageProblem("--max-sessions must be at least 1")
            return launch(host=args.host, port=args.port, checkpoint=args.checkpoint,
                          device=None if args.device == "auto" else args.device, disabled=disabled,
                          max_sessions=args.max_sessions, options=server_options(args))
        if set(disabled) == set(MODALITIES):
            raise UsageProblem(f"--privacy {args.privacy} switches every modality off (audio, text and visual): "
                               "there is nothing to read. Leave at least one on")
        source, description = source_kwargs(args, disabled)
        if source.get("realtime"):  # a replay at real-time speed: the first line starts at launch
            source["clock_origin"] = args.launched
        check_device(args.device)
        print(f"momke-live: loading the model and extractors ({description})…", file=sys.stderr, flush=True)
        if args.demo and "audio" not in disabled:
            print(DEMO_VOICE_NOTE, file=sys.stderr, flush=True)
        session = make_session(args, source, disabled)
    except UsageProblem as problem:
        print(problem if str(problem).startswith("momke-live") else f"momke-live: {problem}", file=sys.stderr)
        return EXIT_USAGE
    except (ValueError, FileNotFoundError) as error:
        if args.verbose:
            log.exception("cannot start")
        print(f"momke-live: {error}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as error:
        if args.verbose:
            log.exception("cannot start")
        print(f"momke-live: error while starting: {type(error).__name__}: {error}", file=sys.stderr)
        return EXIT_ERROR

    from ..outlets import OutletError

    try:
        return run(session, args, description)
    except OutletError as error:  # e.g. the port is taken
        print(f"momke-live: {error}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as error:
        if args.verbose:
            log.exception("session failed")
        print(f"momke-live: error: {type(error).__name__}: {error}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
