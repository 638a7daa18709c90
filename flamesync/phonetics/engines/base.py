"""The interface every speech engine implements, and the registry that names them."""

from __future__ import annotations

import abc
import math
from typing import Callable

from ...errors import InputError
from ..types import Utterance

_REGISTRY: dict[str, Callable[[], "SpeechEngine"]] = {}
_INSTANCES: dict[str, "SpeechEngine"] = {}


class SpeechEngine(abc.ABC):
    """A text-to-speech engine that reports where each phone and word lies in its audio.

    Subclasses set :attr:`name` and implement :meth:`_synthesize`, :meth:`voices` and
    :meth:`languages`. Engines are cheap to construct; a missing system program or library is
    reported (MissingDependencyError) when first used.
    """

    name: str = ""
    default_voice: str = ""

    def synthesize(
        self,
        text: str,
        *,
        voice: str | None = None,
        rate: float = 1.0,
        pitch: float | None = None,
        seed: int = 0,
    ) -> Utterance:
        """Speak ``text`` and return the audio with its phone and word segments.

        Parameters
        ----------
        text : str
            What to say (plain text, not markup).
        voice : str or None
            One of :meth:`voices` (espeak also takes ``"<voice>+<variant>"``); None = the default.
        rate : float
            Speaking-rate factor, 1.0 = the voice's normal rate, 2.0 = twice as fast.
        pitch : float or None
            Pitch factor relative to the voice's normal pitch (1.0 = unchanged); None = default.
        seed : int
            For engines with random choices; the current engines are deterministic.

        Returns
        -------
        Utterance
            Phones cover the audio contiguously (see :func:`flamesync.phonetics.types.check_utterance`).
        """
        if not isinstance(text, str) or not text.strip():
            raise InputError("text to speak is empty")
        if not (isinstance(rate, (int, float)) and math.isfinite(rate) and rate > 0):
            raise InputError(f"speaking rate must be a positive number, got {rate!r}")
        if pitch is not None and not (
            isinstance(pitch, (int, float)) and math.isfinite(pitch) and pitch > 0
        ):
            raise InputError(f"pitch factor must be a positive number, got {pitch!r}")
        voice = voice or self.default_voice
        return self._synthesize(text, voice=voice, rate=float(rate), pitch=pitch, seed=int(seed))

    @abc.abstractmethod
    def _synthesize(
        self, text: str, *, voice: str, rate: float, pitch: float | None, seed: int
    ) -> Utterance: ...

    @abc.abstractmethod
    def voices(self) -> list[str]:
        """Voice names this engine accepts."""

    @abc.abstractmethod
    def languages(self) -> list[str]:
        """Language codes this engine speaks."""

    def language_of(self, voice: str) -> str:
        """Language code of a voice."""
        return "en"

    def synthesize_many(self, texts: list[str], **kwargs) -> list[Utterance]:
        """Speak several texts (engines override this where batching saves process starts)."""
        return [self.synthesize(t, **kwargs) for t in texts]


def register_engine(name: str, factory: Callable[[], SpeechEngine]) -> None:
    """Make an engine available to :func:`get_engine` under ``name``."""
    _REGISTRY[name] = factory


def engine_names() -> list[str]:
    """Names of the registered engines (whether or not their programs are installed)."""
    return sorted(_REGISTRY)


def get_engine(name: str) -> SpeechEngine:
    """The engine called ``name`` (``"espeak"``, ``"flite"``, ``"festival"``), one per process."""
    if name not in _REGISTRY:
        raise InputError(f"unknown speech engine {name!r}; choose from {', '.join(engine_names())}")
    if name not in _INSTANCES:
        _INSTANCES[name] = _REGISTRY[name]()
    return _INSTANCES[name]
