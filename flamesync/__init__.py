"""flamesync: speech audio to 3D facial animation.

The main entry points:

- :func:`flamesync.animate` - audio (and optionally its transcript) to an :class:`Animation`.
- :class:`flamesync.Animation` - the value type every stage passes along.
- :func:`flamesync.load_face` - the default head or a FLAME model.
"""

from .animation import Animation
from .errors import FlamesyncError, InputError

__version__ = "0.1.0"

__all__ = ["Animation", "FlamesyncError", "InputError", "animate", "load_face", "__version__"]


def __getattr__(name):
    # Heavy parts (torch models, audio stack) load only when asked for.
    if name == "load_face":
        from .face import load_face

        return load_face
    if name == "animate":
        from .pipeline import animate

        return animate
    raise AttributeError(f"module 'flamesync' has no attribute {name!r}")
