"""VMC protocol (OSC over UDP): what VSeeFace, VNyan, Warudo, VMagicMirror and other VRM tools
receive from face trackers (default port 39539 for a VMC "performer" sending to a "marionette").

Each frame is one OSC bundle (time tag "immediately") of:

- ``/VMC/Ext/Blend/Val`` (string name, float value) for each of the 52 ARKit shapes, named as the
  "perfect sync" convention for VRM avatars names its blendshape clips: ARKit's names with a capital
  first letter (``JawOpen``, ``EyeBlinkLeft``; ``--osc-names arkit`` sends ``jawOpen`` instead);
- ``/VMC/Ext/Blend/Apply`` (no arguments): apply the values just sent;
- ``/VMC/Ext/Bone/Pos`` (string ``"Head"``, float px, py, pz, qx, qy, qz, qw): the head's local
  rotation as a quaternion in Unity's left-handed frame (x to the avatar's right, y up, z forward);
  the position is zero;
- ``/VMC/Ext/OK`` (int 1: an avatar is loaded) and ``/VMC/Ext/T`` (float seconds of the stream).

Message addresses and argument lists follow the public VMC protocol specification
(protocol.vmc.info); the bundles are built with ``python-osc``.
"""

from __future__ import annotations

import socket
import struct

import numpy as np

from ...channels import ARKIT_52
from ...errors import InputError, require
from .base import Sink, parse_host_port

INSTALL = "pip install 'flamesync[live]'"
NAME_STYLES = ("perfect-sync", "arkit")


def unity_head_quaternion(rotvec: np.ndarray) -> tuple[float, float, float, float]:
    """Axis-angle head rotation in flamesync's face frame to a Unity quaternion (x, y, z, w).

    The face frame is right-handed with x to the face's left; Unity's is left-handed with x to the
    avatar's right: mirroring x flips the sense of rotation, so the axis becomes (ax, -ay, -az).
    """
    r = np.asarray(rotvec, np.float64).reshape(3)
    angle = float(np.linalg.norm(r))
    if angle < 1e-12:
        return 0.0, 0.0, 0.0, 1.0
    axis = r / angle * np.array([1.0, -1.0, -1.0])
    s = np.sin(angle / 2)
    return float(axis[0] * s), float(axis[1] * s), float(axis[2] * s), float(np.cos(angle / 2))


class VmcSink(Sink):
    """Send every frame as a VMC bundle to ``HOST:PORT``."""

    inline = True  # a datagram on a non-blocking socket: the receiver can never hold it up

    def __init__(self, address: str, *, names: str = "perfect-sync"):
        require("pythonosc", feature="--osc (VMC protocol)", install=INSTALL)
        if names not in NAME_STYLES:
            raise InputError(f"--osc-names must be one of {', '.join(NAME_STYLES)}, got {names!r}")
        host, port = parse_host_port(address, what="--osc")
        self.name = f"osc {host}:{port}"
        self.addr = (host, port)
        self.names = tuple(n[0].upper() + n[1:] for n in ARKIT_52) if names == "perfect-sync" else ARKIT_52
        self._sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
        # A full send buffer then fails this frame at once instead of stalling the audio thread.
        self._sock.setblocking(False)
        self._build_template()

    def bundle(self, frame) -> bytes:
        """The frame's OSC bundle.

        python-osc builds the bundle once, at the start, with every message in place; each frame
        then only overwrites the float arguments (big-endian float32 at fixed offsets), which costs
        a small fraction of building 57 messages anew, 50 times a second.
        """
        buf = bytearray(self._template)
        # The weights as one scatter of their big-endian bytes: one numpy call instead of 52 packs.
        np.frombuffer(buf, np.uint8)[self._blend_bytes] = np.asarray(frame.weights, ">f4").view(np.uint8)
        struct.pack_into(">f", buf, self._t_offset, float(frame.t))
        struct.pack_into(">4f", buf, self._quat_offset, *unity_head_quaternion(frame.head))
        return bytes(buf)

    def _build_template(self) -> None:
        from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
        from pythonosc.osc_message_builder import OscMessageBuilder

        def msg(address, *args):
            m = OscMessageBuilder(address=address)
            for a in args:
                m.add_arg(a)
            return m.build()

        messages = [msg("/VMC/Ext/OK", 1), msg("/VMC/Ext/T", 0.0)]
        messages += [msg("/VMC/Ext/Blend/Val", name, 0.0) for name in self.names]
        messages += [msg("/VMC/Ext/Blend/Apply"), msg("/VMC/Ext/Bone/Pos", "Head", 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0)]
        b = OscBundleBuilder(IMMEDIATELY)
        for m in messages:
            b.add_content(m)
        self._template = b.build().dgram
        # Bundle: "#bundle\0", an 8-byte time tag, then (int32 size, message) per element; every
        # float to patch is at the end of its message.
        ends, pos = [], 16
        for m in messages:
            size = len(m.dgram)
            ends.append(pos + 4 + size)
            pos += 4 + size
        assert pos == len(self._template)
        self._t_offset = ends[1] - 4
        self._blend_offsets = [e - 4 for e in ends[2:2 + len(self.names)]]
        self._blend_bytes = (np.asarray(self._blend_offsets)[:, None] + np.arange(4)).reshape(-1)
        self._quat_offset = ends[-1] - 16

    def send(self, frame) -> bool:
        try:
            self._sock.sendto(self.bundle(frame), self.addr)
        except OSError:
            return False
        return True

    def close(self) -> None:
        self._sock.close()
