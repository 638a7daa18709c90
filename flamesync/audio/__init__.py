"""Audio input: loading any readable file to mono float32 at a fixed rate (in memory, or in a
temporary file read a slice at a time), and features."""

from .io import load_audio
from .samplefile import SampleFile

__all__ = ["SampleFile", "load_audio"]
