"""Speech engines behind one interface: ``get_engine("espeak" | "flite" | "festival")``."""

from .base import SpeechEngine, engine_names, get_engine, register_engine
from . import espeak  # noqa: F401  (registers "espeak")

__all__ = ["SpeechEngine", "engine_names", "get_engine", "register_engine"]
from . import festival, flite  # noqa: F401,E402  (register "festival", "flite")
