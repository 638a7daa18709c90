"""Live Link Face over UDP: the packets Epic's Live Link Face iPhone app sends, which Unreal
Engine's Live Link "LiveLinkFace" / ARKit source receives (default port 11111).

Byte layout (version 6; every number big-endian, "network order"), written from public
descriptions of the format: the field list of Unreal's ``AppleARKitLiveLinkSource`` packet reader as
summarised in the README of the LLV recorder (github.com/think-biq/LLV, "Frame layout") and the
field order of the public Python and C++ Live Link Face readers (e.g. PyLiveLinkFace); no code was
taken from them.

====================  =========================  ================================================
field                 encoding                   value sent by flamesync
====================  =========================  ================================================
packet version        uint8                      6
device id             int32 length + UTF-8 bytes  ``--livelink-device`` (default ``flamesync``)
subject name          int32 length + UTF-8 bytes  ``--subject`` (default ``flamesync``)
frame number          int32                      frame index since the stream started
sub-frame             float32                    0.0
frame rate            int32 numerator, int32 den  50 / 1
value count           uint8                      61
values                61 x float32               52 ARKit weights, then head and eye angles
====================  =========================  ================================================

A packet is therefore 1 + 4 + len(device) + 4 + len(subject) + 16 + 1 + 244 bytes (286 with the
default names). The 52 weights come in ARKit's ``ARFaceAnchor.BlendShapeLocation`` order as Unreal
enumerates it (``EARFaceBlendShape``: eyeBlinkLeft ... jawForward, jawLeft, jawRight, jawOpen,
mouthClose ... tongueOut, the order of :data:`flamesync.channels.ARKIT_52`), then HeadYaw,
HeadPitch, HeadRoll, LeftEyeYaw, LeftEyePitch, LeftEyeRoll, RightEyeYaw, RightEyePitch,
RightEyeRoll in radians, computed as for the Live Link Face CSV export
(:func:`flamesync.export.tables.live_link_extra`).
"""

from __future__ import annotations

import socket
import struct

import numpy as np

from ...channels import ARKIT_52
from ...errors import InputError
from .base import Sink, parse_host_port

PACKET_VERSION = 6
N_VALUES = 61
EXTRA_NAMES = ("HeadYaw", "HeadPitch", "HeadRoll", "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
               "RightEyeYaw", "RightEyePitch", "RightEyeRoll")
VALUE_NAMES = tuple(n[0].upper() + n[1:] for n in ARKIT_52) + EXTRA_NAMES
FPS_NUM, FPS_DEN = 50, 1


def _string(text: str) -> bytes:
    raw = text.encode("utf-8")
    return struct.pack(">i", len(raw)) + raw


def encode_packet(values: np.ndarray, *, frame: int, subject: str, device: str,
                  rate: tuple[int, int] = (FPS_NUM, FPS_DEN)) -> bytes:
    """One Live Link Face packet.

    Parameters
    ----------
    values : np.ndarray, shape (61,)
        52 ARKit weights (ARKit order) then the 9 head/eye angles in radians.
    frame : int
        Frame number at ``rate``.
    subject, device : str
        Live Link subject name and device id.
    """
    values = np.asarray(values, ">f4").reshape(-1)
    if len(values) != N_VALUES:
        raise InputError(f"a Live Link Face packet holds {N_VALUES} values, got {len(values)}")
    head = struct.pack(">B", PACKET_VERSION) + _string(device) + _string(subject)
    timing = struct.pack(">ifiiB", int(frame) & 0x7FFFFFFF, 0.0, int(rate[0]), int(rate[1]), N_VALUES)
    return head + timing + values.tobytes()


def decode_packet(data: bytes) -> dict:
    """Read a packet of the layout above (for tests and for checking what a receiver gets).

    Returns ``{"version", "device", "subject", "frame", "subframe", "rate", "values"}``; a malformed
    packet raises :class:`InputError`.
    """
    try:
        pos = 0
        (version,) = struct.unpack_from(">B", data, pos)
        pos += 1
        strings = []
        for _ in range(2):
            (n,) = struct.unpack_from(">i", data, pos)
            pos += 4
            if n < 0 or pos + n > len(data):
                raise InputError("string length past the end of the packet")
            strings.append(bytes(data[pos:pos + n]).decode("utf-8"))
            pos += n
        frame, sub, num, den, count = struct.unpack_from(">ifiiB", data, pos)
        pos += 17
        values = np.frombuffer(data, ">f4", count=count, offset=pos).astype(np.float32)
        if pos + 4 * count != len(data):
            raise InputError(f"{len(data) - pos - 4 * count} bytes after the values")
    except (struct.error, ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"not a Live Link Face packet ({exc})") from None
    return {"version": version, "device": strings[0], "subject": strings[1], "frame": frame, "subframe": sub,
            "rate": (num, den), "values": values}


def frame_values(frame) -> np.ndarray:
    """The 61 packet values of a :class:`~flamesync.live.frames.LiveFrame`."""
    return np.concatenate([frame.weights, frame.angles]).astype(np.float32)


def _rest_frame():
    from ..frames import LiveFrame

    z = np.zeros(3, np.float32)
    return LiveFrame(0, 0.0, np.zeros(len(ARKIT_52), np.float32), z, z, 0.0, np.zeros(9, np.float32))


class LiveLinkSink(Sink):
    """Send every frame as a Live Link Face packet to ``HOST:PORT`` over UDP."""

    inline = True  # a datagram on a non-blocking socket: the receiver can never hold it up

    def __init__(self, address: str, *, subject: str = "flamesync", device: str = "flamesync"):
        if not subject or len(subject) > 255:
            raise InputError("the Live Link subject name must be 1 to 255 characters")
        if not device or len(device) > 255:
            raise InputError("the Live Link device id must be 1 to 255 characters")
        host, port = parse_host_port(address, what="--livelink")
        self.name = f"livelink {host}:{port}"
        self.addr = (host, port)
        self.subject, self.device = subject, device
        self._sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
        # A full send buffer then fails this frame at once instead of stalling the audio thread.
        self._sock.setblocking(False)

    def send(self, frame) -> bool:
        packet = encode_packet(frame_values(frame), frame=frame.index, subject=self.subject, device=self.device)
        try:
            self._sock.sendto(packet, self.addr)
        except OSError:  # no route, refused (ICMP from an earlier packet), full buffer: skip this frame
            return False
        return True

    def close(self) -> None:
        self._sock.close()
