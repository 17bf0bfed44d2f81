"""An item's own recording (WAV, FLAC, MP3, OGG — anything libsndfile reads, at any rate) as harness Audio.

Decoding is libsndfile's (through `soundfile`); resampling to 16 kHz and averaging channels are
`harness.audio.Audio`'s, the same path every other clip takes. Hub datasets hand over encoded bytes
(their `Audio(decode=False)` column); those are decoded the same way, from memory.
"""
from __future__ import annotations

import io
from pathlib import Path

from harness.audio import Audio, AudioError

SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".oga", ".aiff", ".aif")


def load_recording(source: str | Path | bytes, item_id: str) -> Audio:
    """The recording as 16 kHz mono Audio; an unreadable or empty file is an AudioError naming item and file."""
    import soundfile

    where = "in-memory audio" if isinstance(source, bytes) else str(source)
    try:
        data, rate = soundfile.read(io.BytesIO(source) if isinstance(source, bytes) else str(source),
                                    dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, OSError) as e:
        raise AudioError(item_id, f"cannot decode {where}: {e}") from e
    if data.shape[0] == 0:
        raise AudioError(item_id, f"{where} has no samples")
    if data.shape[1] > 1:
        return Audio.downmix(data, rate, item_id, channel_axis=-1)
    return Audio.from_array(data[:, 0], rate, item_id)
