"""Drawings made by code in the styles people draw in, for the unseen-style evaluation.

A person drawing a shoe in a paint program does not produce Canny edges of a photo (the style
the bundled encoder's sketch training data has, ``encoders.sketch.line_drawing``): they draw a
closed outline with a thin or a thick pen, or fill a silhouette, often small in the frame or off
to one side. These functions draw such pictures from a shape mask (the object's pixels in a
held-out data picture), and draw numerals and simple no-match objects with a font and polygons.
Every drawing is black on white, ``CANVAS`` px square, RGB.
"""

from __future__ import annotations

import math
from enum import Enum

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

CANVAS = 224


class Style(str, Enum):
    THIN = "outline-thin"  # a 2 px pen around the shape, the shape filling most of the frame
    THICK = "outline-thick"  # a 9 px marker
    SILHOUETTE = "silhouette"  # the shape filled in black
    SMALL = "outline-small"  # a thin outline at a third of the frame's size
    OFF_CENTRE = "outline-off-centre"  # half the frame's size, pushed into a corner


def shape_mask(pixels: np.ndarray, size: int = 168) -> np.ndarray:
    """The object of a (white on black) data picture as a smooth boolean mask, ``size`` px on its
    longer side: upscaled bicubically and thresholded, then holes filled, so the outline is one
    closed curve as a pen would draw it, not the pixel steps of a 28 px picture."""
    gray = Image.fromarray(np.asarray(pixels, dtype=np.uint8)).convert("L")
    box = gray.point(lambda v: 255 if v > 40 else 0).getbbox()
    if box is None:
        raise ValueError("the picture has no object to draw (it is blank)")
    gray = gray.crop(box)
    scale = size / max(gray.size)
    gray = gray.resize((max(1, round(gray.size[0] * scale)), max(1, round(gray.size[1] * scale))),
                       Image.Resampling.BICUBIC)
    values = np.asarray(gray, dtype=np.float64)
    mask = values > 0.3 * values.max()
    return ndimage.binary_fill_holes(ndimage.binary_opening(mask, iterations=1))


def _outline(mask: np.ndarray, width: int) -> np.ndarray:
    """The mask's boundary, ``width`` px wide, drawn on the inside and outside of the edge."""
    padded = np.pad(mask, width + 1)
    grown = ndimage.binary_dilation(padded, iterations=(width + 1) // 2)
    shrunk = ndimage.binary_erosion(padded, iterations=width // 2 + 1)
    return grown & ~shrunk


def _place(ink: np.ndarray, scale: float, centre: tuple[float, float]) -> Image.Image:
    """Black ``ink`` on a white canvas, resized by ``scale``, its centre at ``centre`` (fractions
    of the canvas)."""
    picture = Image.fromarray(np.where(ink, 0, 255).astype(np.uint8))
    if scale != 1.0:
        picture = picture.resize((max(1, round(picture.size[0] * scale)), max(1, round(picture.size[1] * scale))),
                                 Image.Resampling.LANCZOS)
    canvas = Image.new("L", (CANVAS, CANVAS), 255)
    x = round(centre[0] * CANVAS - picture.size[0] / 2)
    y = round(centre[1] * CANVAS - picture.size[1] / 2)
    canvas.paste(picture, (max(0, min(CANVAS - picture.size[0], x)), max(0, min(CANVAS - picture.size[1], y))))
    return canvas.convert("RGB")


def draw_shape(pixels: np.ndarray, style: Style) -> Image.Image:
    """A drawing of the object in ``pixels`` (a white-on-black data picture) in ``style``."""
    mask = shape_mask(pixels)
    if style is Style.THIN:
        return _place(_outline(mask, 2), 1.0, (0.5, 0.5))
    if style is Style.THICK:
        return _place(_outline(mask, 9), 1.0, (0.5, 0.5))
    if style is Style.SILHOUETTE:
        return _place(np.pad(mask, 4), 1.0, (0.5, 0.5))
    if style is Style.SMALL:
        # drawn at full size with a 6 px pen, then shrunk: about a 2 px line at a third the size
        return _place(_outline(mask, 6), 0.4, (0.5, 0.5))
    if style is Style.OFF_CENTRE:
        return _place(_outline(mask, 4), 0.55, (0.3, 0.32))
    raise ValueError(f"unknown style {style!r}")


def draw_numeral(digit: int, *, bold: bool) -> Image.Image:
    """A numeral written with a font (Pillow's bundled one), thin or bold, black on white."""
    font = ImageFont.load_default(size=150)
    canvas = Image.new("RGB", (CANVAS, CANVAS), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((CANVAS / 2, CANVAS / 2), str(digit), fill="black", font=font, anchor="mm",
              stroke_width=8 if bold else 0, stroke_fill="black")
    return canvas


def _star(cx: float, cy: float, outer: float, inner: float, points: int = 5) -> list[tuple[float, float]]:
    corners = []
    for k in range(2 * points):
        radius = outer if k % 2 == 0 else inner
        angle = math.pi / points * k - math.pi / 2
        corners.append((cx + radius * math.cos(angle), cy + radius * math.sin(angle)))
    return corners


def draw_no_match(subject: str) -> Image.Image:
    """A simple drawing of something no zoo model makes (a house, a star, the sun, ...)."""
    canvas = Image.new("RGB", (CANVAS, CANVAS), "white")
    draw = ImageDraw.Draw(canvas)
    pen = {"fill": None, "outline": "black", "width": 4}
    if subject == "house":
        draw.rectangle((50, 100, 174, 190), **pen)
        draw.polygon([(40, 104), (112, 40), (184, 104)], **pen)
        draw.rectangle((98, 140, 126, 190), **pen)
    elif subject == "star":
        draw.polygon(_star(112, 118, 90, 36), **pen)
    elif subject == "sun":
        draw.ellipse((72, 72, 152, 152), **pen)
        for k in range(12):
            angle = 2 * math.pi * k / 12
            draw.line([(112 + 52 * math.cos(angle), 112 + 52 * math.sin(angle)),
                       (112 + 92 * math.cos(angle), 112 + 92 * math.sin(angle))], fill="black", width=4)
    elif subject == "tree":
        draw.polygon([(112, 24), (44, 150), (180, 150)], **pen)
        draw.rectangle((100, 150, 124, 200), **pen)
    elif subject == "car":
        draw.polygon([(24, 150), (24, 120), (64, 116), (90, 84), (150, 84), (176, 116), (204, 122), (204, 150)], **pen)
        draw.ellipse((48, 134, 92, 178), **pen)
        draw.ellipse((140, 134, 184, 178), **pen)
    elif subject == "cup":
        draw.rectangle((60, 70, 150, 180), **pen)
        draw.arc((130, 95, 190, 155), start=-90, end=90, fill="black", width=4)
    elif subject == "heart":
        draw.polygon([(112, 190), (36, 110), (40, 66), (76, 48), (112, 76), (148, 48), (184, 66), (188, 110)], **pen)
    elif subject == "spiral":
        points = [(112 + 6 * t * math.cos(t), 112 + 6 * t * math.sin(t)) for t in np.linspace(0, 5 * math.pi, 200)]
        draw.line(points, fill="black", width=4)
    else:
        raise ValueError(f"no drawing for {subject!r}")
    return canvas


NO_MATCH_DRAWINGS = ("house", "star", "sun", "tree", "car", "cup", "heart", "spiral")
