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

    def __init__(self, address: str, *, names: str = "perfect-sync"):
        require("pythonosc", feature="--osc (VMC protocol)", install=INSTALL)
        if names not in NAME_STYLES:
            raise InputError(f"--osc-names must be one of {', '.join(NAME_STYLES)}, got {names!r}")
        host, port = parse_host_port(address, what="--osc")
        self.name = f"osc {host}:{port}"
        self.addr = (host, port)
        self.names = tuple(n[0].upper() + n[1:] for n in ARKIT_52) if names == "perfect-sync" else ARKIT_52
        self._sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
        from .livelink import _rest_frame

        self.bundle(_rest_frame())  # imports python-osc's builders now, not while frames queue up

    def bundle(self, frame) -> bytes:
        from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
        from pythonosc.osc_message_builder import OscMessageBuilder

        def msg(address, *args):
            m = OscMessageBuilder(address=address)
            for a in args:
                m.add_arg(a)
            return m.build()

        b = OscBundleBuilder(IMMEDIATELY)
        b.add_content(msg("/VMC/Ext/OK", 1))
        b.add_content(msg("/VMC/Ext/T", float(frame.t)))
        for name, w in zip(self.names, frame.weights):
            b.add_content(msg("/VMC/Ext/Blend/Val", name, float(w)))
        b.add_content(msg("/VMC/Ext/Blend/Apply"))
        b.add_content(msg("/VMC/Ext/Bone/Pos", "Head", 0.0, 0.0, 0.0, *unity_head_quaternion(frame.head)))
        return b.build().dgram

    def send(self, frame) -> bool:
        try:
            self._sock.sendto(self.bundle(frame), self.addr)
        except OSError:
            return False
        return True

    def close(self) -> None:
        self._sock.close()
