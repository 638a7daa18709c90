"""Where live frames go: one module per protocol behind the small :class:`~.base.Sink` interface.

- :mod:`.livelink`: Live Link Face UDP packets (Unreal Engine, MetaHuman).
- :mod:`.osc`: VMC protocol over OSC/UDP (VSeeFace, VNyan, Warudo, VMagicMirror...).
- :mod:`.ws`: a WebSocket server broadcasting JSON frames (browsers, Unity, custom tools).
- :mod:`.record`: the whole stream saved as an animation file.
"""

from .base import DirectSink, QueuedSink, Sink, parse_host_port, wrap_sink

__all__ = ["Sink", "QueuedSink", "DirectSink", "wrap_sink", "parse_host_port"]
