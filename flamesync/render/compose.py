"""2D finishing of rendered frames: labels, side-by-side layout and the channel strip plot.

Drawn with numpy and PIL only (no matplotlib), per frame, in the parent process.
"""

from __future__ import annotations

import numpy as np

# Channels shown in the strip plot, in order, when the animation has them.
PLOT_CHANNELS = ("jawOpen", "mouthClose", "mouthFunnel", "mouthPucker", "mouthStretchLeft", "mouthRollLower",
                 "tongueOut")
PLOT_COLORS = ((240, 200, 80), (120, 200, 255), (255, 120, 120), (190, 140, 255), (120, 230, 150),
               (255, 170, 90), (230, 110, 200))
PLOT_WINDOW_S = 4.0


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one fixed-size bitmap font
        return ImageFont.load_default()


def draw_label(image: np.ndarray, text: str) -> np.ndarray:
    """Write ``text`` in the top-left corner of an (H, W, 3) uint8 image on a dark box; returns a copy."""
    from PIL import Image, ImageDraw

    h = image.shape[0]
    size = max(10, h // 24)
    img = Image.fromarray(image)
    draw = ImageDraw.Draw(img)
    font = _font(size)
    pad = max(3, size // 3)
    box = draw.textbbox((pad, pad), text, font=font)
    draw.rectangle((box[0] - pad, box[1] - pad, box[2] + pad, box[3] + pad), fill=(0, 0, 0))
    draw.text((pad, pad), text, fill=(255, 255, 255), font=font)
    return np.asarray(img)


class StripPlot:
    """A scrolling plot of the main mouth channels with a cursor at the current frame.

    Parameters
    ----------
    values : (T, C) float array of the channels in ``names``
    names : sequence of str
    fps : float
    width, height : int
        Size of the strip in pixels.
    """

    def __init__(self, values: np.ndarray, names, fps: float, *, width: int, height: int):
        self.values = np.asarray(values, np.float32)
        self.names = list(names)
        self.fps = float(fps)
        self.width, self.height = int(width), int(height)
        self.font = _font(max(9, height // 9))

    @classmethod
    def for_animation(cls, animation, *, width: int, height: int) -> "StripPlot":
        names = [c for c in PLOT_CHANNELS if c in animation.channels]
        return cls(animation.weights(names), names, animation.fps, width=width, height=height)

    def draw(self, frame: int) -> np.ndarray:
        """The strip for ``frame``: (height, width, 3) uint8."""
        from PIL import Image, ImageDraw

        w, h = self.width, self.height
        img = Image.new("RGB", (w, h), (24, 25, 28))
        draw = ImageDraw.Draw(img)
        top, bottom = 4, h - 4
        for level in (0.0, 0.5, 1.0):
            y = bottom - level * (bottom - top)
            draw.line((0, y, w, y), fill=(55, 57, 62))
        half = PLOT_WINDOW_S / 2 * self.fps
        x_of = lambda f: (f - frame + half) / (2 * half) * (w - 1)  # noqa: E731
        lo = max(0, int(np.floor(frame - half)))
        hi = min(len(self.values), int(np.ceil(frame + half)) + 1)
        t = np.arange(lo, hi)
        for j, name in enumerate(self.names):
            if hi - lo < 2:
                break
            v = np.clip(self.values[lo:hi, j], 0.0, 1.0)
            pts = list(zip(x_of(t).tolist(), (bottom - v * (bottom - top)).tolist()))
            draw.line(pts, fill=PLOT_COLORS[j % len(PLOT_COLORS)], width=max(1, h // 60))
        cx = x_of(frame)
        draw.line((cx, 0, cx, h), fill=(230, 230, 230))
        x = 4
        for j, name in enumerate(self.names):
            draw.text((x, 2), name, fill=PLOT_COLORS[j % len(PLOT_COLORS)], font=self.font)
            x += draw.textlength(name, font=self.font) + 8
        return np.asarray(img)


def even(image: np.ndarray) -> np.ndarray:
    """Pad to even width and height (H.264 in yuv420p needs them)."""
    h, w = image.shape[:2]
    ph, pw = h % 2, w % 2
    if ph or pw:
        image = np.pad(image, ((0, ph), (0, pw), (0, 0)), mode="edge")
    return image
