"""Media files read the way a replay reads them: audio in chunks at the file's own rate, video
frames with their media times (the `read()/open()/close()` interface of realtime/sources'
devices, so a replay plays them like live devices).

Audio goes through soundfile (wav, flac, ogg) or PyAV (the audio track of a video); video frames
through PyAV (FFmpeg), as RGB. Damaged packets are skipped and counted (`decode_errors`), as
ffmpeg does, so the rest still plays; FFmpeg's own messages about the damage (hundreds for one
damaged file) are silenced (`quiet_decoder_log`): the count says it once. The live replay and the served-media path (served.py,
which builds training corpora) read files only through these classes, so both hear and see the
same samples and frames.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .media import SAMPLE_RATE

AUDIO_FILE_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif", ".au", ".mp3"}
CHUNK_S = 0.064  # a replayed file's audio comes in chunks of this length, as a microphone's would


class FileAudioDevice:
    """The audio of a file in chunks of `chunk_s`, with each chunk's media time."""

    live = False

    def __init__(self, path: str | Path, chunk_s: float = CHUNK_S) -> None:
        self.path = Path(path)
        self.chunk_s = chunk_s
        self.sample_rate = SAMPLE_RATE
        self._reader = None
        self._position = 0  # samples delivered so far
        self._decode_errors = 0  # kept after close
        self._first_error: str | None = None

    def open(self) -> None:
        if self._reader is not None:
            return
        import soundfile as sf

        try:
            handle = sf.SoundFile(str(self.path))
        except RuntimeError:  # libsndfile cannot read it (a video container): FFmpeg can
            self._reader = _PyAVAudio(self.path)
            self.sample_rate = self._reader.sample_rate
        else:
            self.sample_rate = handle.samplerate
            self._reader = _SoundFileAudio(handle)
        self._chunk = max(1, round(self.chunk_s * self.sample_rate))

    @property
    def decode_errors(self) -> int:
        """Damaged packets skipped so far (a video container read through FFmpeg)."""
        return getattr(self._reader, "decode_errors", self._decode_errors)

    @property
    def first_decode_error(self) -> str | None:
        return getattr(self._reader, "first_decode_error", self._first_error)

    def read(self):
        samples = self._reader.read(self._chunk)
        if samples is None or len(samples) == 0:
            raise EOFError(str(self.path))
        t = self._position / self.sample_rate
        self._position += len(samples)
        return samples, t

    def close(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            self._decode_errors = getattr(reader, "decode_errors", 0)
            self._first_error = getattr(reader, "first_decode_error", None)
            reader.close()


class _SoundFileAudio:
    def __init__(self, handle) -> None:
        self._handle = handle

    def read(self, n: int):
        data = self._handle.read(n, dtype="float32", always_2d=True)
        return data.mean(axis=1) if len(data) else None

    def close(self) -> None:
        self._handle.close()


def quiet_decoder_log() -> None:
    """Silence FFmpeg's messages about damaged data. PyAV ignores them by default, but a library
    the text extractor imports (torchvision.io) has PyAV forward them to Python logging, and one
    damaged file then prints hundreds of "ERROR libav..." lines. The damage is counted
    (`decode_errors`) and reported once instead; PyAV's default is restored unless the "libav"
    logger was set to DEBUG (`momke-live -v` shows them)."""
    import av.logging

    if logging.getLogger("libav").level != logging.DEBUG:
        av.logging.set_level(None)


class _Decoded:
    """The frames of one stream of a container FFmpeg reads, skipping damaged packets.

    A packet that fails to decode is counted (`decode_errors`, the first error kept) and the
    next one is tried, as ffmpeg itself does; a container that cannot be demuxed further ends
    the stream early with the error raised to the reader."""

    def __init__(self, path: Path, kind: str) -> None:
        import av

        quiet_decoder_log()
        try:
            self.container = av.open(str(path))
        except Exception as error:
            raise ValueError(f"cannot read {path}: {error}") from error
        streams = getattr(self.container.streams, kind)
        if not streams:
            self.container.close()
            raise ValueError(f"{path} has no {kind} track to replay")
        self.stream = streams[0]
        self.decode_errors = 0
        self.first_decode_error: str | None = None
        self._frames = self._decode()

    def _decode(self):
        import av

        for packet in self.container.demux(self.stream):
            try:
                frames = packet.decode()
            except (av.error.FFmpegError, OSError) as error:
                self.decode_errors += 1
                if self.first_decode_error is None:
                    self.first_decode_error = f"{error} (at {float(packet.pts or 0) * float(packet.time_base or 0):.1f} s)"
                continue
            yield from frames

    def next(self):
        """The next decoded frame, or None at the end."""
        return next(self._frames, None)

    def close(self) -> None:
        self.container.close()


class _PyAVAudio:
    """The first audio track of any container FFmpeg reads, as mono float32 at its own rate.

    Audio lost to a damaged packet is replaced by silence (from the frames' timestamps), so what
    follows keeps its time and stays in step with the video and the transcript."""

    def __init__(self, path: Path) -> None:
        import av

        self._decoded = _Decoded(path, "audio")
        stream = self._decoded.stream
        self.sample_rate = int(stream.rate or stream.codec_context.sample_rate)
        self._resampler = av.AudioResampler(format="flt", layout="mono", rate=self.sample_rate)
        self._pending = np.zeros(0, dtype=np.float32)
        self._produced = 0  # samples decoded (or filled) so far
        self._ended = False

    @property
    def decode_errors(self) -> int:
        return self._decoded.decode_errors

    @property
    def first_decode_error(self) -> str | None:
        return self._decoded.first_decode_error

    def read(self, n: int):
        while len(self._pending) < n and not self._ended:
            frame = self._decoded.next()
            if frame is None:
                self._ended = True
                break
            pieces = [self._pending]
            if frame.time is not None and self.decode_errors:
                gap = round(frame.time * self.sample_rate) - self._produced
                if gap > 0:  # samples lost with a damaged packet
                    pieces.append(np.zeros(gap, dtype=np.float32))
                    self._produced += gap
            for out in self._resampler.resample(frame):
                samples = out.to_ndarray().reshape(-1)
                pieces.append(samples)
                self._produced += len(samples)
            self._pending = np.concatenate(pieces)
        chunk, self._pending = self._pending[:n], self._pending[n:]
        return chunk if len(chunk) else None

    def close(self) -> None:
        self._decoded.close()


class FileVideoDevice:
    """The frames of a video file (FFmpeg through PyAV), with their media times; damaged packets
    are skipped and counted; read(decode=False) only advances (no RGB conversion)."""

    live = False

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._decoded: _Decoded | None = None
        self._index = 0
        self._decode_errors = 0  # kept after close
        self._first_error: str | None = None

    def open(self) -> None:
        if self._decoded is not None:
            return
        self._decoded = _Decoded(self.path, "video")
        self.fps = float(self._decoded.stream.average_rate or 25.0)

    @property
    def decode_errors(self) -> int:
        return self._decoded.decode_errors if self._decoded is not None else self._decode_errors

    @property
    def first_decode_error(self) -> str | None:
        return self._decoded.first_decode_error if self._decoded is not None else self._first_error

    def read(self, decode: bool = True):
        if self._decoded is None:
            raise RuntimeError("video file is not open")
        frame = self._decoded.next()
        if frame is None:
            raise EOFError(str(self.path))
        t = frame.time if frame.time is not None else self._index / self.fps
        self._index += 1
        if not decode:
            return None, t
        return frame.to_ndarray(format="rgb24"), t

    def close(self) -> None:
        decoded, self._decoded = self._decoded, None
        if decoded is not None:
            self._decode_errors, self._first_error = decoded.decode_errors, decoded.first_decode_error
            decoded.close()


def has_video_track(path: str | Path) -> bool:
    return _has_track(path, "video")


def has_audio_track(path: str | Path) -> bool:
    if Path(path).suffix.lower() in AUDIO_FILE_SUFFIXES:
        return True
    return _has_track(path, "audio")


def _has_track(path: str | Path, kind: str) -> bool:
    import av

    try:
        with av.open(str(path)) as container:
            return bool(getattr(container.streams, kind))
    except Exception:
        return False
