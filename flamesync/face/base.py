"""The face-model interface that exporters, renderers, the teacher and evaluation rely on."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..animation import Animation
from ..errors import InputError
from . import lbs


class FaceModel:
    """A parametric face: expression channels (+ jaw/head rotation) to vertex positions.

    Conventions: metres; right-handed, **y up**, x towards the face's left (viewer's right when
    looking at the face), +z out of the face (glTF's convention; Blender importers turn y-up into
    z-up). Subclasses set the attributes below and implement :meth:`forward`.

    Attributes
    ----------
    name : str
    channels : tuple of str
        Expression channel names :meth:`forward` takes, in order.
    template : np.ndarray, (V, 3) float32
        Neutral vertex positions.
    faces : np.ndarray, (F, 3) int32
        Triangles, counter-clockwise seen from outside.
    parts : dict of str to np.ndarray
        Vertex indices of named parts (``"skin"``, ``"upper_teeth"``, ``"lower_teeth"``,
        ``"tongue"``, ``"eye_left"``, ``"eye_right"``, ``"upper_lip"``, ``"lower_lip"``, ...).
    """

    name: str
    channels: tuple[str, ...]
    template: np.ndarray
    faces: np.ndarray
    parts: dict[str, np.ndarray]

    # ------------------------------------------------------------------ to implement
    def forward(
        self,
        weights: torch.Tensor,
        *,
        jaw: torch.Tensor | None = None,
        head: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Vertices for a batch of parameters (differentiable).

        Parameters
        ----------
        weights : (B, len(channels))
        jaw, head : (B, 3) axis-angle in radians, or None for zero

        Returns
        -------
        (B, V, 3) float32 tensor
        """
        raise NotImplementedError

    # ------------------------------------------------------------------ shared
    @property
    def n_vertices(self) -> int:
        return int(self.template.shape[0])

    @property
    def lip_vertices(self) -> np.ndarray:
        """Indices of the lip vertices used for lip vertex error."""
        return np.concatenate([self.parts["upper_lip"], self.parts["lower_lip"]])

    def vertices(
        self,
        weights: np.ndarray | dict[str, float] | None = None,
        *,
        jaw: np.ndarray | None = None,
        head: np.ndarray | None = None,
    ) -> np.ndarray:
        """Numpy convenience around :meth:`forward`.

        ``weights`` is ``(B, C)``, ``(C,)`` or a dict of channel name to value (unknown names raise
        :class:`InputError`). Returns ``(B, V, 3)``, or ``(V, 3)`` for unbatched input.
        """
        single = False
        if weights is None:
            weights = np.zeros(len(self.channels), np.float32)
        if isinstance(weights, dict):
            weights = self.weights_from_dict(weights)
        w = np.asarray(weights, dtype=np.float32)
        if w.ndim == 1:
            single = True
            w = w[None]
        if w.shape[1] != len(self.channels):
            raise InputError(f"{self.name} takes {len(self.channels)} weights per frame, got {w.shape[1]}")
        if not np.isfinite(w).all():
            raise InputError("expression weights contain NaN or infinity")
        tj = None if jaw is None else torch.as_tensor(np.asarray(jaw, np.float32).reshape(-1, 3))
        th = None if head is None else torch.as_tensor(np.asarray(head, np.float32).reshape(-1, 3))
        for t in (tj, th):
            if t is not None and not torch.isfinite(t).all():
                raise InputError("rotation contains NaN or infinity")
        with torch.no_grad():
            out = self.forward(torch.from_numpy(w), jaw=tj, head=th).detach().cpu().numpy()
        return out[0] if single else out

    def weights_from_dict(self, values: dict[str, float]) -> np.ndarray:
        unknown = sorted(set(values) - set(self.channels))
        if unknown:
            raise InputError(
                f"unknown channel(s) for {self.name}: {', '.join(unknown)} "
                f"(see 'flamesync face info' for the names)"
            )
        w = np.zeros(len(self.channels), np.float32)
        for k, v in values.items():
            w[self.channels.index(k)] = v
        return w

    def animate(self, animation: Animation, *, batch_size: int = 256) -> np.ndarray:
        """Vertices for every frame of ``animation``, shape (T, V, 3) float32.

        Channels the model does not have are ignored; channels it has but the animation lacks
        are zero. A jaw rotation marked ``meta["jaw_rotation"] == "implied"`` is skipped: the
        expression weights already contain it. Works in batches so long animations stay in bounded memory per step.
        """
        from ..channels import JAW_ROTATION_IMPLIED

        w = animation.weights(self.channels)
        # An implied jaw rotation is already contained in jawOpen; applying it too would double it.
        jaw = None if animation.meta.get("jaw_rotation") == JAW_ROTATION_IMPLIED else animation.jaw
        head = animation.head
        out = np.empty((animation.n_frames, self.n_vertices, 3), np.float32)
        for s in range(0, animation.n_frames, batch_size):
            e = s + batch_size
            out[s:e] = self.vertices(
                w[s:e],
                jaw=None if jaw is None else jaw[s:e],
                head=None if head is None else head[s:e],
            ).reshape(-1, self.n_vertices, 3)
        return out


@dataclass(eq=False)
class BlendshapeFace(FaceModel):
    """A face driven by linear blendshapes plus a jaw joint (and optionally a head joint).

    ``vertices = LBS_head(LBS_jaw(template + sum_k w_k * deltas_k))``.

    Attributes
    ----------
    deltas : (K, V, 3) float32
        One offset field per channel.
    jaw_pivot : (3,) float32
        Jaw joint centre.
    jaw_weights : (V,) float32
        Jaw skin weight per vertex (lower teeth and tongue near 1, upper head 0).
    head_pivot : (3,) float32 or None
    head_weights : (V,) float32 or None
    """

    name: str
    channels: tuple[str, ...]
    template: np.ndarray
    faces: np.ndarray
    deltas: np.ndarray
    jaw_pivot: np.ndarray
    jaw_weights: np.ndarray
    parts: dict[str, np.ndarray] = field(default_factory=dict)
    head_pivot: np.ndarray | None = None
    head_weights: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._t = {
            "template": torch.from_numpy(np.ascontiguousarray(self.template, np.float32)),
            "deltas": torch.from_numpy(np.ascontiguousarray(self.deltas, np.float32)),
            "jaw_pivot": torch.from_numpy(np.asarray(self.jaw_pivot, np.float32)),
            "jaw_weights": torch.from_numpy(np.asarray(self.jaw_weights, np.float32)),
        }
        # Only jaw-weighted vertices move with the jaw: rotating just those is several times faster.
        jaw_idx = np.flatnonzero(np.asarray(self.jaw_weights) > 0)
        self._t["jaw_idx"] = torch.from_numpy(jaw_idx)
        self._t["jaw_w_sub"] = self._t["jaw_weights"][self._t["jaw_idx"]]
        if self.head_pivot is not None:
            self._t["head_pivot"] = torch.from_numpy(np.asarray(self.head_pivot, np.float32))
            self._t["head_weights"] = torch.from_numpy(np.asarray(self.head_weights, np.float32))

    def forward(self, weights, *, jaw=None, head=None):
        t = self._t
        v = lbs.blend_shapes(weights.to(t["deltas"].dtype), t["template"], t["deltas"])
        if jaw is not None:
            idx = t["jaw_idx"]
            moved = lbs.rotate_about_pivot(v[:, idx], jaw.to(v.dtype), t["jaw_pivot"], t["jaw_w_sub"])
            v = v.index_copy(1, idx, moved)
        if head is not None:
            if "head_pivot" not in t:
                raise InputError(f"{self.name} has no head joint; drop the head rotation channels")
            v = lbs.rotate_about_pivot(v, head, t["head_pivot"], t["head_weights"])
        return v
