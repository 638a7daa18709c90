"""Audio input: loading any readable file to mono float32 at a fixed rate, and features."""

from .io import load_audio

__all__ = ["load_audio"]
