"""Speech with exact phone timings: engines, the unified phone set, augmentation, forced alignment.

>>> from flamesync.phonetics import get_engine
>>> utt = get_engine("espeak").synthesize("Put a cap on it, Bob.", voice="en-us+f3")
>>> [(round(p.start, 3), p.phone) for p in utt.phones][:3]  # doctest: +SKIP
"""

from .align import align, recognize_phones
from .engines import SpeechEngine, engine_names, get_engine, register_engine
from .phoneset import PhoneInfo, inventory, map_phone, normalize_ipa, phone_info, phone_map
from .types import SILENCE, PhoneSegment, Utterance, WordSegment, check_utterance, fill_gaps

__all__ = [
    "SILENCE", "PhoneSegment", "WordSegment", "Utterance", "check_utterance", "fill_gaps",
    "PhoneInfo", "inventory", "phone_info", "normalize_ipa", "phone_map", "map_phone",
    "SpeechEngine", "get_engine", "engine_names", "register_engine",
    "align", "recognize_phones",
]
