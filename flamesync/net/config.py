"""Network hyper-parameters, importable without torch (inference may run on onnxruntime)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..channels import SPEECH_CHANNELS
from .targets import VISEME_CLASSES


@dataclass(frozen=True)
class ModelConfig:
    """Network hyper-parameters (stored in every checkpoint).

    Attributes
    ----------
    n_mels : int
        Feature channels per frame (``FeatureConfig.n_features``: the mel bands, twice over with the
        noise-floor channels).
    dim : int
        Model width.
    heads : int
        Attention heads (``dim`` divisible by it).
    layers : int
        Transformer blocks.
    ffn_mult : int
        Feed-forward width as a multiple of ``dim``.
    attn_past : int
        Past output frames each attention layer sees (0.48 s at 24).
    attn_future : tuple of int
        Future output frames each attention layer sees (one entry per layer).
    conv_kernel : int
        Causal depthwise convolution width in each block.
    dropout : float
    channels : tuple of str
        Names of the predicted weight channels.
    n_visemes : int
        Auxiliary classes.
    """

    n_mels: int = 80
    dim: int = 128
    heads: int = 4
    layers: int = 4
    ffn_mult: int = 2
    attn_past: int = 24
    attn_future: tuple[int, ...] = (1, 1, 1, 0)
    conv_kernel: int = 5
    dropout: float = 0.1
    channels: tuple[str, ...] = SPEECH_CHANNELS
    n_visemes: int = len(VISEME_CLASSES)

    def __post_init__(self):
        object.__setattr__(self, "attn_future", tuple(int(x) for x in self.attn_future))
        object.__setattr__(self, "channels", tuple(self.channels))
        if len(self.attn_future) != self.layers:
            raise ValueError(f"attn_future needs one entry per layer ({self.layers}), got {self.attn_future}")
        if self.dim % self.heads:
            raise ValueError(f"dim {self.dim} is not divisible by heads {self.heads}")

    # Front end: pairing feature frames (2j-1, 2j), a k=3 conv centred on j (1 frame ahead), then a
    # causal k=3 conv.
    FRONT_FUTURE = 1
    FRONT_PAST = 1 + 2

    @property
    def lookahead_frames(self) -> int:
        """Output frames after frame ``j`` that frame ``j`` depends on."""
        return self.FRONT_FUTURE + sum(self.attn_future)

    @property
    def past_frames(self) -> int:
        """Output frames before frame ``j`` that frame ``j`` can depend on (the receptive field)."""
        # The pairing reaches one feature frame (half an output frame) back: count it as one frame.
        return 1 + self.FRONT_PAST + self.layers * (self.attn_past + self.conv_kernel - 1)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["attn_future"] = list(self.attn_future)
        d["channels"] = list(self.channels)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})
