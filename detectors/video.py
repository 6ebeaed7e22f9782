"""A few frames of a video, decoded safely for the watermark detectors (PyAV, optional).

    sampled = sample_frames("clip.mp4", "MP4")
    sampled.frames    # [Frame(time_s=1.0, rgb=ndarray (H, W, 3) uint8), ...]
    sampled.reason    # None, or why no frame could be decoded

Content Credentials of a video are read by C2PA on the bytes; the pixels are looked at only
here, and only when PyAV is installed (``pip install 'fakestudio[video]'``: PyAV ships its own
FFmpeg build, nothing else is needed). Which frames: ``SAMPLES`` times spread over the
duration (at 1/10, 3/10, ... of it), each the first frame decoded at or after the time, after
a seek to the key frame before it. Decoding after a key frame stops at ``MAX_DECODE_PER_SAMPLE``
frames: a video with key frames far apart gives the frame reached then, and the report gives
every frame's real time.

Guards: only the demuxer of the format identified (``detectors.media``) is used, on the file
itself (no other protocol, ``enable_drefs`` off: a MOV's data references to other files are
never followed); a stream whose frame size is over ``image_io.MAX_PIXELS`` is refused before any
frame is decoded; at most ``MAX_PACKETS`` packets are read in all; frames over
``image_io.ANALYSIS_MAX_PIXELS`` are reduced like pictures. Measured on the 2-core development
machine (bench/formats.py): the five frames of a 1 min 1080p H.264 MP4 in ~0.3 s.
Imports neither fakestudio nor torch; PyAV is imported on first use.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field

import numpy as np

from detectors import image_io

SAMPLES = 5
MAX_DECODE_PER_SAMPLE = 48  # frames decoded after a key frame to reach a sample's time
MAX_PACKETS = 5000  # packets read in all, across samples
#: FFmpeg demuxer per format name of ``detectors.media``
DEMUXERS = {"MP4": "mp4", "MOV": "mov", "M4V": "mp4", "AVI": "avi"}


@dataclass
class Frame:
    time_s: float
    rgb: np.ndarray
    key_frame: bool = False


@dataclass
class Sampled:
    frames: list[Frame] = field(default_factory=list)
    width: int | None = None
    height: int | None = None
    duration_s: float | None = None
    codec: str | None = None
    fps: float | None = None
    reason: str | None = None  # why no frame was decoded (None when some were)
    notes: list[str] = field(default_factory=list)

    def describe(self) -> dict:
        return {
            "width": self.width,
            "height": self.height,
            "duration_s": self.duration_s,
            "codec": self.codec,
            "fps": self.fps,
            "frames_sampled": [round(f.time_s, 3) for f in self.frames],
        }


def available() -> bool:
    from detectors.media import PYAV

    return PYAV.available


def sample_frames(source: str | os.PathLike | bytes, name: str, samples: int = SAMPLES) -> Sampled:
    """Decode up to ``samples`` frames spread over the video; never raises for a bad file."""
    out = Sampled()
    try:
        import av
    except ImportError:
        out.reason = "PyAV is not installed"
        return out
    fmt = DEMUXERS.get(name)
    if fmt is None:
        out.reason = f"no video demuxer for {name}"
        return out
    stream_src = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else str(source)
    try:
        container = av.open(
            stream_src,
            format=fmt,
            options={"enable_drefs": "0", "use_absolute_path": "0"},
            metadata_errors="ignore",
        )
    except Exception as e:  # noqa: BLE001 - FFmpeg's errors are many; each is a reason
        out.reason = _why(e)
        return out
    try:
        _sample(container, out, samples)
    except MemoryError:
        out.reason = "out of memory while decoding"
    except Exception as e:  # noqa: BLE001
        if not out.frames:
            out.reason = _why(e)
        else:
            out.notes.append(f"decoding stopped early: {_why(e)}")
    finally:
        container.close()
    if not out.frames and out.reason is None:
        out.reason = "no frame could be decoded"
    return out


def _sample(container, out: Sampled, samples: int) -> None:
    if not container.streams.video:
        out.reason = "no video track"
        return
    vs = container.streams.video[0]
    cc = vs.codec_context
    out.width, out.height, out.codec = cc.width, cc.height, cc.name
    w, h = cc.width or 0, cc.height or 0
    if w <= 0 or h <= 0 or w > image_io.MAX_SIDE or h > image_io.MAX_SIDE:
        out.reason = f"the video track declares {w}x{h} pixels"
        return
    if w * h > image_io.MAX_PIXELS:
        out.reason = (
            f"decompression-bomb guard: the video track declares {w}x{h} pixels "
            f"(limit {image_io.MAX_PIXELS // 10**6} MP)"
        )
        return
    rate = vs.average_rate or vs.guessed_rate
    out.fps = round(float(rate), 3) if rate else None
    duration = None
    if vs.duration and vs.time_base:
        duration = float(vs.duration * vs.time_base)
    elif container.duration:
        duration = container.duration / 1_000_000
    out.duration_s = round(duration, 3) if duration else None
    cc.thread_type = "AUTO"
    targets = [duration * (2 * i + 1) / (2 * samples) for i in range(samples)] if duration else [0]
    budget = [MAX_PACKETS]
    seen: set[float] = set()
    from av.video.reformatter import VideoReformatter

    reformatter = VideoReformatter()
    for t in targets:
        frame = _frame_at(container, vs, t, budget)
        if frame is None:
            continue
        ts = round(float(frame.time or 0.0), 6)
        if ts in seen:
            continue
        seen.add(ts)
        out.frames.append(Frame(ts, _rgb(frame, reformatter), bool(frame.key_frame)))
        if budget[0] <= 0:
            out.notes.append(f"stopped after {MAX_PACKETS} packets")
            break
    if len(out.frames) < len(targets):
        out.notes.append(
            f"{len(out.frames)} distinct frame(s) for {len(targets)} sample times "
            "(key frames far apart, or a short video)"
        )


def _frame_at(container, vs, t: float, budget: list[int]):
    """The first frame at or after ``t`` seconds, decoded from the key frame before it (at
    most ``MAX_DECODE_PER_SAMPLE`` frames; the last one reached otherwise)."""
    if t > 0 and vs.time_base:
        container.seek(int(t / vs.time_base), stream=vs, backward=True, any_frame=False)
    else:
        container.seek(0, stream=vs, backward=True)
    last = None
    decoded = 0
    for packet in container.demux(vs):
        budget[0] -= 1
        if budget[0] < 0:
            return last
        for frame in packet.decode():
            last = frame
            decoded += 1
            if frame.time is None or frame.time >= t - 1e-3 or decoded >= MAX_DECODE_PER_SAMPLE:
                return frame
    return last


def _rgb(frame, reformatter) -> np.ndarray:
    """RGB pixels of a frame (reduced like a picture when huge), converted by this call's own
    one-thread scaler: PyAV's shared scaler keeps worker threads that a forked audit worker
    does not have (it hung there, measured)."""
    w, h = frame.width, frame.height
    k = image_io.reduce_factor(w, h)
    size = (max(1, w // k), max(1, h // k)) if k > 1 else (w, h)
    out = reformatter.reformat(frame, width=size[0], height=size[1], format="rgb24", threads=1)
    return np.ascontiguousarray(out.to_ndarray(), dtype=np.uint8)


def _why(e: BaseException) -> str:
    msg = " ".join(str(e).split())[:200]
    return f"{type(e).__name__}: {msg}" if msg else type(e).__name__


def merge_watermarks(per_frame: list[tuple[float, list[dict]]]) -> list[dict]:
    """One result per scheme over the sampled frames, in the detectors' order: the frame
    where it was found with the highest confidence (else the best unfound one), with its time
    in ``details.frame_time_s`` and in how many frames it was found in ``details.frames_found``."""
    best: dict[str, dict] = {}
    found_in: dict[str, int] = {}
    order: list[str] = []
    for t, results in per_frame:
        for w in results:
            scheme = str(w.get("scheme"))
            if scheme not in best:
                order.append(scheme)
            found_in[scheme] = found_in.get(scheme, 0) + bool(w.get("found"))
            cur = best.get(scheme)
            key = (bool(w.get("found")), float(w.get("confidence") or 0.0))
            if cur is None or key > (bool(cur.get("found")), float(cur.get("confidence") or 0.0)):
                best[scheme] = {**w, "details": {**(w.get("details") or {}), "frame_time_s": t}}
    out = []
    for scheme in order:
        w = best[scheme]
        w["details"]["frames_found"] = found_in[scheme]
        w["details"]["frames_checked"] = len(per_frame)
        out.append(w)
    return out
