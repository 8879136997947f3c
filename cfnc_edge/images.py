"""Image I/O and the one preprocessing step shared by every backend."""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
from PIL import Image

from cfnc_edge.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
# The most pixels one image may have. A 20000x20000 frame (400 MP) decodes to
# 1.2 GB and scoring it peaked at 1.76 GB, so a batch of 8 would need ~10 GB.
# 100 MP is far above any inspection camera (tiling exists for large frames),
# so only a bomb or a mistake is refused, before its pixels are decoded.
MAX_PIXELS = 100_000_000


def list_images(folder: Path) -> list[Path]:
    folder = Path(folder)
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def parse_size(text: str | int) -> list[int] | None:
    """"S" or "HxW" (as --image-size and --tile spell a size) -> [S] or [H, W]; None if it is neither."""
    try:
        values = [int(p) for p in str(text).lower().split("x")]
    except ValueError:
        return None
    return values if len(values) in (1, 2) else None


def read_image(path: Path) -> np.ndarray:
    """Read any image as 8-bit BGR (grayscale and alpha are converted).

    A JPEG is decoded by Pillow, which refuses one cut short: OpenCV decodes it
    with only a warning on stderr, the missing rows gray, and that image would
    be scored (or trained on) as if it were the part."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read image {path}: {exc.strerror or exc}") from None
    if not data:
        raise DataError(f"cannot read image {path}: the file is empty")
    _check_pixels(data, path)
    if data[:3] == b"\xff\xd8\xff":
        return to_bgr(_decode_jpeg(data, path), source=str(path))
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise DataError(f"cannot read image {path}: empty or not an image file")
    return to_bgr(img, source=str(path))


def _check_pixels(data: bytes, path) -> None:
    """Refuse an image over MAX_PIXELS from its header alone (Pillow reads no
    pixel before asked). A format Pillow does not know, or a header it cannot
    parse, is left to OpenCV, which decodes under its own limit
    (OPENCV_IO_MAX_IMAGE_PIXELS, 2^30 by default)."""
    cap = f"cfnc-edge reads at most {MAX_PIXELS // 10**6} megapixels: downscale or crop it"
    try:
        with warnings.catch_warnings():
            # Pillow's decompression-bomb warning starts at 89 MP: MAX_PIXELS is the limit here
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                w, h = im.size
    except Image.DecompressionBombError as exc:  # from 179 MP Pillow raises, its message holds the pixel count
        raise DataError(f"cannot read image {path}: more than {2 * Image.MAX_IMAGE_PIXELS // 10**6} "
                        f"megapixels ({exc}); {cap}") from None
    except (OSError, SyntaxError, ValueError):
        return
    if w * h > MAX_PIXELS:
        raise DataError(f"cannot read image {path}: {w}x{h} is {w * h / 1e6:g} megapixels; {cap}")


def _decode_jpeg(data: bytes, path) -> np.ndarray:
    """JPEG bytes -> gray or BGR uint8 (the pixels OpenCV gives where both bundle the same libjpeg-turbo;
    within a grey level where their versions differ)."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            rgb = np.asarray(im if im.mode in ("L", "RGB") else im.convert("RGB"))
    except (OSError, SyntaxError, ValueError) as exc:  # Pillow's "truncated", "broken data stream", ...
        raise DataError(f"cannot read image {path}: damaged JPEG ({exc})") from None
    return rgb if rgb.ndim == 2 else np.ascontiguousarray(rgb[:, :, ::-1])


def to_bgr(img: np.ndarray, source: str = "frame") -> np.ndarray:
    """Bring any frame (gray, BGR, BGRA, 16-bit) to 8-bit BGR."""
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise DataError(f"{source}: unsupported pixel type {img.dtype}")
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if img.ndim == 3 and img.shape[2] == 1:
        return cv2.cvtColor(img[:, :, 0], cv2.COLOR_GRAY2BGR)
    if img.ndim == 3 and img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    if img.ndim == 3 and img.shape[2] == 3:
        return img
    raise DataError(f"{source}: unsupported image shape {img.shape}")


def read_mask(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """Read a ground-truth mask as bool, checking it matches its image."""
    mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise DataError(f"cannot read mask {path}")
    if mask.shape != tuple(shape):
        raise DataError(
            f"mask {path} is {mask.shape[1]}x{mask.shape[0]} but its image is {shape[1]}x{shape[0]}"
        )
    return mask > 127


def as_hw(size: int | Sequence[int]) -> tuple[int, int]:
    """A model input size as (height, width): an int is a square (bundles
    written before non-square inputs hold one), a pair is (h, w)."""
    if isinstance(size, (int, np.integer)):
        return int(size), int(size)
    h, w = size
    return int(h), int(w)


def preprocess(frames: list[np.ndarray], size: int | Sequence[int]) -> np.ndarray:
    """BGR frames of any size -> uint8 RGB batch (B, 3, h, w); `size` is S (square) or (h, w).

    Normalisation is not done here: it lives inside the model (and so inside
    the exported graph), which keeps host-to-device copies at one byte a pixel.
    """
    h, w = as_hw(size)
    out = np.empty((len(frames), 3, h, w), dtype=np.uint8)
    for i, f in enumerate(frames):
        f = to_bgr(f)
        shrink = f.shape[0] > h and f.shape[1] > w
        r = cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        out[i] = r[:, :, ::-1].transpose(2, 0, 1)
    return out
