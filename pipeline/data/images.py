"""Encoded images: the header checks that decide whether an image may be decoded, and decoding to an array.

`refusal` reads an image's header and refuses: an empty file, an unknown format, more than `MAX_PIXELS` pixels (a
decompression bomb is never decoded), content not in its name's format (a PNG or GIF named `.jpg`), a truncated or
CMYK JPEG, a 16-bit PNG, an alpha channel. What passes is decoded by OpenCV, which turns EXIF-rotated JPEGs upright
and converts gray to RGB (and colour to gray) as asked, then made square (`fit_square`: squash, crop or pad).
"""

import io
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

# A 50-megapixel photo decodes to 150 MB of RGB; anything larger is more likely a decompression bomb than a training
# image, and would be shrunk to a few dozen pixels anyway.
MAX_PIXELS = 50_000_000
TOO_LARGE = f"more than {MAX_PIXELS:,} pixels; not decoded (downscale it)"
UNDECODABLE = "not a decodable image"
JPEG = ("JPEG", "MPO")  # Pillow names a camera's multi-picture JPEG "MPO"
FORMATS = {".jpg": JPEG, ".jpeg": JPEG, ".png": ("PNG",), ".bmp": ("BMP",), ".webp": ("WEBP",)}
PNG_BIT_DEPTH = 24  # offset of the bit depth: signature (8), IHDR length and type (8), width and height (8)


def decode_image(data: bytes, size: int, color: str, resize: str = "squash") -> np.ndarray | None:
    """Decode image bytes to a (size, size, channels) uint8 array (RGB or gray), or None if undecodable; `resize`
    as `fit_square` does it."""
    image = decoded(data, color)
    return None if image is None else fit_square(image, size, resize)


def decoded(data: bytes, color: str) -> np.ndarray | None:
    """Decode image bytes at their own size to an (height, width, channels) uint8 array, RGB or gray, upright as
    their EXIF orientation says; None if undecodable."""
    flag = cv2.IMREAD_GRAYSCALE if color == "gray" else cv2.IMREAD_COLOR
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
    except cv2.error:
        return None
    if image is None:
        return None
    if color == "rgb":
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return image.reshape(*image.shape[:2], -1)


def fit_square(image: np.ndarray, size: int, resize: str) -> np.ndarray:
    """A (height, width, channels) image as a (size, size, channels) one. `squash` stretches it to the square;
    `crop` keeps the centred square of its short side; `pad` shrinks or enlarges it whole, keeping its aspect ratio,
    and centres it between black bars (zeros)."""
    height, width = image.shape[:2]
    if resize == "crop":
        side = min(height, width)
        top, left = (height - side) // 2, (width - side) // 2
        image = image[top : top + side, left : left + side]
    if resize != "pad":
        return _resized(image, size, size)
    scale = size / max(height, width)
    inner_h, inner_w = max(1, round(height * scale)), max(1, round(width * scale))
    square = np.zeros((size, size, image.shape[2]), np.uint8)
    top, left = (size - inner_h) // 2, (size - inner_w) // 2
    square[top : top + inner_h, left : left + inner_w] = _resized(image, inner_w, inner_h)
    return square


def _resized(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """cv2.resize by pixel-area averaging, keeping the channel axis that OpenCV drops for one channel."""
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA).reshape(height, width, -1)


def refusal(data: bytes, name: str) -> str:
    """Why the encoded image `name` must be skipped, judged from its header without decoding it; "" if it may be
    decoded."""
    if not data:
        return "empty file"
    try:
        with warnings.catch_warnings():  # Pillow warns of (and refuses) huge images on its own, above our limit
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            header = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        return TOO_LARGE
    except Exception:  # a corrupt header can fail in almost any way
        return UNDECODABLE
    with header:
        return _header_refusal(header, data, Path(name).suffix.lower())


def _header_refusal(header: Image.Image, data: bytes, suffix: str) -> str:
    """The checks of `refusal` that need the opened header: size, format, colour space, bit depth, alpha.

    A JPEG is whole when an end-of-image marker follows its last start-of-scan marker (in the compressed data a
    0xFF byte is always followed by 0x00 or a restart marker, so the last ones found are real markers).
    """
    if header.width * header.height > MAX_PIXELS:
        return TOO_LARGE
    if header.format not in FORMATS.get(suffix, ()):
        return f"{header.format} data named {suffix}; convert it to the format its name says"
    if header.format in JPEG and header.mode == "CMYK":
        return "CMYK JPEG; convert it to RGB"
    if header.format in JPEG and data.rfind(b"\xff\xd9") < data.rfind(b"\xff\xda"):
        return "truncated JPEG (no end-of-image marker); download it again"
    if header.format == "PNG" and data[PNG_BIT_DEPTH] == 16:
        return "16-bit PNG; convert it to 8 bits per channel"
    if "A" in header.getbands():
        return f"{header.mode} image with an alpha channel; flatten it to RGB"
    return ""
