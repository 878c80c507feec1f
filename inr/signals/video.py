"""Writing frame sequences: MP4 through imageio's ffmpeg plugin (imageio-ffmpeg), GIF otherwise."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from inr.atomic import atomic_write_bytes


def encode_video(frames: list[np.ndarray], fps: int, suffix: str = ".mp4") -> tuple[bytes, str]:
    """(file bytes, suffix) of uint8 frames [H, W, 1|3] as `suffix` (.mp4 or .gif); an MP4 falls
    back to GIF where no ffmpeg writer is installed."""
    import imageio.v3 as iio

    stack = np.stack([f if f.shape[-1] == 3 else np.repeat(f, 3, -1) for f in frames])
    if suffix == ".mp4":
        try:
            import imageio_ffmpeg  # noqa: F401  (the mp4 writer)

            return iio.imwrite("<bytes>", stack, extension=".mp4", fps=fps, macro_block_size=1), ".mp4"
        except ImportError:
            pass
    return iio.imwrite("<bytes>", stack, extension=".gif", duration=1000 / fps, loop=0), ".gif"


def write_video(path: str, frames: list[np.ndarray], fps: int) -> str:
    """Write frames to `path` (.mp4 or .gif) atomically; returns the path written, which is the
    .gif beside it when an MP4 cannot be encoded here."""
    data, suffix = encode_video(frames, fps, Path(path).suffix.lower())
    if suffix != Path(path).suffix.lower():
        path = str(Path(path).with_suffix(suffix))
        print(f"inr: no mp4 writer (pip install imageio-ffmpeg); writing {path} instead", file=sys.stderr)
    atomic_write_bytes(path, data)
    return path
