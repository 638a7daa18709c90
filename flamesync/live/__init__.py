"""Real time: audio in, animation frames out to engines, avatars and browsers as they are made.

One audio source (:mod:`.sources`: microphone, a file at real-time pace, raw PCM on stdin) feeds the
streaming network (:class:`flamesync.net.stream.Streamer`, with the expressive layers); every frame it
emits goes to any number of sinks at once (:mod:`.sinks`: Live Link Face UDP, VMC/OSC, WebSocket,
a recorded take). :func:`.engine.run_live` ties them together.

Real time comes first: each network sink has its own thread and a short bounded queue, so a receiver
that is absent, slow or gone never holds up the audio path; when its queue is full the oldest frame
is dropped and counted. Only the recorder keeps every frame.

Imports only downward: :mod:`flamesync.net`, :mod:`flamesync.expressive`, :mod:`flamesync.export`,
:mod:`flamesync.audio`, :mod:`flamesync.animation`. The optional packages (``sounddevice``,
``python-osc``, ``websockets``) load only when the source or sink that needs them is asked for.
"""

from .frames import LiveFrame, frames_from_animation

__all__ = ["LiveFrame", "frames_from_animation"]
