"""Reading an image file as a viewer shows it: what :func:`faceexp.data.preprocessing.load_image`,
the one decoder of every consumer (the paper's crop, the recognisers' alignment, the pose
estimate, training), does before and after Pillow decodes.

Before opening: the path must be a regular file, found by ``os.stat`` without opening it
(a FIFO would block the reader, a device never ends, a directory or a dangling symbolic
link is no image): :func:`file_problem`. The file is then opened non-blocking and checked
again on its descriptor, so a FIFO swapped in between the two never blocks.

Before decoding: only the formats faces come in are tried (:data:`IMAGE_FORMATS`; an EPS
would run Ghostscript), and the pixels the header declares are held against a cap,
:func:`pixel_cap`: a 118 kB PNG may declare 10000x10000 pixels, 6 GB once decoded and
converted. The default, :data:`DEFAULT_MAX_PIXELS` (40 megapixels, a 7300x5500 photo),
is raised with the environment variable :data:`MAX_PIXELS_ENV` or ``max_pixels=``.

After decoding (:func:`as_viewed`): the EXIF orientation is applied (a phone's JPEG
stored on its side with orientation 6 is turned upright, :func:`PIL.ImageOps.exif_transpose`;
an EXIF block that cannot be parsed is ignored, as viewers ignore it), and images of more
than 8 bits per sample become 8-bit by their bit depth (:func:`to_8bit`): 16-bit grey
``v -> round(v / 257)``, so that a 16-bit PNG spanning 0..65535 looks like its 8-bit version.
"""
from __future__ import annotations

import os
import re
import stat
import warnings

import numpy as np
from PIL import Image, ImageOps

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "MAX_PIXELS_ENV",
    "IMAGE_FORMATS",
    "UnreadableImage",
    "pixel_cap",
    "file_problem",
    "open_image",
    "probe_image",
    "to_8bit",
    "as_viewed",
]

#: Largest image decoded unless the cap is raised (width x height): 40 megapixels.
DEFAULT_MAX_PIXELS = 40_000_000
#: Environment variable that sets the pixel cap (a positive whole number of pixels).
MAX_PIXELS_ENV = "FACEEXP_MAX_PIXELS"
#: Pillow formats tried when decoding: those a face image comes in. GIF (first frame of an
#: animation) and TIFF are read, as the file endings of
#: :data:`faceexp.data.folders.IMAGE_EXTENSIONS` are; PGM is Pillow's PPM; a camera's
#: multi-picture JPEG (MPO) opens through JPEG.
IMAGE_FORMATS = ("JPEG", "PNG", "PPM", "BMP", "WEBP", "GIF", "TIFF")
_FORMATS_READ = "JPEG, PNG, PGM/PPM, BMP, WebP, GIF or TIFF"
_ORIENTATION = 0x0112
_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"))


class UnreadableImage(ValueError):
    """A file not read as an image. ``reason`` says why, without naming the file."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def pixel_cap(max_pixels=None) -> int:
    """The most pixels (width x height) an image may have to be decoded.

    Parameters
    ----------
    max_pixels : int, optional
        The cap; default the environment variable :data:`MAX_PIXELS_ENV` when
        set, else :data:`DEFAULT_MAX_PIXELS`.

    Returns
    -------
    int

    Raises
    ------
    ValueError
        ``max_pixels``, or the environment variable, is not a positive whole number.
    """
    if max_pixels is not None:
        if isinstance(max_pixels, bool) or not isinstance(max_pixels, (int, np.integer)) \
                or max_pixels < 1:
            raise ValueError(f"max_pixels must be a positive whole number of pixels (width x "
                             f"height), got {max_pixels!r}")
        return int(max_pixels)
    text = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_PIXELS
    value = int(text) if re.fullmatch(r"\+?\d+", text) else 0
    if value < 1:
        raise ValueError(f"environment variable {MAX_PIXELS_ENV}={text!r} must be a positive "
                         "whole number of pixels (width x height), e.g. "
                         f"{MAX_PIXELS_ENV}=100000000; unset it for the default "
                         f"{DEFAULT_MAX_PIXELS}")
    return value


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "a special file")


def file_problem(path) -> str | None:
    """Why ``path`` cannot be read as an image file, found without opening it; None if it can.

    Returns
    -------
    str or None
        ``"does not exist"``; ``"dangling symbolic link (its target '...' does not
        exist)"``; ``"not a regular file but a FIFO (named pipe): not opened"`` (or a
        socket, a device, a directory); ``"cannot be read (...)"`` when ``os.stat`` fails
        otherwise (permissions, a symbolic link loop); None for a regular file.
    """
    try:
        mode = os.stat(path).st_mode  # follows symbolic links
    except FileNotFoundError:
        if os.path.islink(path):
            return f"dangling symbolic link (its target {os.readlink(path)!r} does not exist)"
        return "does not exist"
    except OSError as exc:
        return f"cannot be read ({exc.strerror or type(exc).__name__})"
    if stat.S_ISREG(mode):
        return None
    return f"not a regular file but {_kind(mode)}" + ("" if stat.S_ISDIR(mode) else
                                                     ": not opened")


def _cap_reason(pixels: int, cap: int, size: str | None = None) -> str:
    size = f"{size} pixels" if size else f"{pixels} pixels"
    return (f"{size} ({pixels / 1e6:.1f} megapixels) exceed the cap of {cap} pixels on a face "
            f"image: set the environment variable {MAX_PIXELS_ENV}={pixels} (or pass "
            "max_pixels) to read it")


def open_image(path, *, max_pixels=None) -> Image.Image:
    """Decode an image file as a viewer shows it: checks, decoding, :func:`as_viewed`.

    Parameters
    ----------
    path : str or path-like
    max_pixels : int, optional
        See :func:`pixel_cap`.

    Returns
    -------
    PIL.Image.Image
        Decoded, upright, 8 bits per sample: ``"L"`` for grey (PGM, 16-bit PNG),
        ``"RGB"``, or the file's other 8-bit mode (``"P"``, ``"RGBA"``, ``"LA"``,
        ``"CMYK"``...).

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist or is a dangling symbolic link.
    UnreadableImage
        Not a regular file, over the pixel cap, not one of :data:`IMAGE_FORMATS`,
        truncated or corrupt: ``reason`` says which.
    ValueError
        The pixel cap is malformed.
    """
    return _read(path, pixel_cap(max_pixels), decode=True)


def probe_image(path, *, max_pixels=None) -> tuple[int, int]:
    """Check an image file without decoding its pixels: what a command checks before work.

    The checks of :func:`open_image` that need only the header: a regular file, a
    format read, the pixel cap. A file that passes may still be truncated.

    Returns
    -------
    (width, height)

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist or is a dangling symbolic link.
    ValueError
        One line naming the file and why it cannot be read (or a malformed cap).
    """
    try:
        return _read(path, pixel_cap(max_pixels), decode=False)
    except UnreadableImage as exc:
        raise ValueError(f"image file {str(path)!r}: {exc.reason}") from None


def _read(path, cap: int, *, decode: bool):
    problem = file_problem(path)
    if problem == "does not exist":
        raise FileNotFoundError(f"image file {str(path)!r} does not exist")
    if problem is not None and problem.startswith("dangling"):
        raise FileNotFoundError(f"image file {str(path)!r} is a {problem}")
    if problem is not None:
        raise UnreadableImage(problem)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise UnreadableImage(f"cannot be read ({exc.strerror or type(exc).__name__})") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):  # replaced after the first check
            raise UnreadableImage(f"not a regular file but {_kind(mode)}: not opened")
        file = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with file:
        try:
            with warnings.catch_warnings():
                # the cap below replaces Pillow's warning; its error (twice its limit) stays
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                image = Image.open(file, formats=_formats())
            width, height = image.size
            if width * height > cap:
                raise UnreadableImage(_cap_reason(width * height, cap, f"{width}x{height}"))
            if not decode:
                return width, height
            image.load()
            return as_viewed(image)
        except Image.DecompressionBombError as exc:
            # Pillow's own refusal, in Image.open, of twice PIL.Image.MAX_IMAGE_PIXELS
            found = re.search(r"\((\d+) pixels\)", str(exc))
            pixels = int(found.group(1)) if found else 2 * Image.MAX_IMAGE_PIXELS + 1
            if pixels > cap:
                raise UnreadableImage(_cap_reason(pixels, cap)) from None
            raise UnreadableImage(
                f"{pixels} pixels exceed Pillow's own limit of {2 * Image.MAX_IMAGE_PIXELS} "
                f"(twice PIL.Image.MAX_IMAGE_PIXELS), which {MAX_PIXELS_ENV} does not "
                "raise") from None
        except Image.UnidentifiedImageError:
            raise UnreadableImage(f"cannot be decoded (not a {_FORMATS_READ} image)") from None
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            if isinstance(exc, UnreadableImage):
                raise
            raise UnreadableImage(f"cannot be decoded ({type(exc).__name__}: {exc})") from None


def _formats() -> list[str]:
    """:data:`IMAGE_FORMATS` that this Pillow can open (WebP is an optional part of it)."""
    Image.init()
    return [name for name in IMAGE_FORMATS if name in Image.OPEN]


def _declared_bits(image: Image.Image) -> int | None:
    """Bits per sample a TIFF declares (Pillow reads PNG and PGM as 16 bits, a PGM's
    maxval scaled to 65535)."""
    tags = getattr(image, "tag_v2", None)
    try:
        bits = tags.get(258) if tags is not None else None
        bits = int(bits[0] if isinstance(bits, tuple) else bits) if bits is not None else None
    except (TypeError, ValueError, IndexError):
        return None
    return bits if bits is not None and 8 < bits <= 32 else None


def to_8bit(image: Image.Image, *, bits: int | None = None) -> Image.Image:
    """An image of more than 8 bits per sample as an 8-bit ``"L"`` image; others unchanged.

    Integer modes (``"I;16"``, ``"I;16B"``, ``"I;16L"``, ``"I"``): ``round(v / s)``
    with ``s = (2 ** bits - 1) / 255``, ``bits`` the depth a TIFF declares, else 16
    (a 16-bit PNG, a PGM whose maxval Pillow scales to 65535), so 65535 -> 255 and
    ``257 * k -> k``. Float (``"F"``): values in [0, 1] are scaled by 255, values
    in [0, 255] kept (rounded); other ranges are refused.

    Parameters
    ----------
    image : PIL.Image.Image
    bits : int, optional
        Bits per sample of an integer image; default what a TIFF declares, else 16.

    Raises
    ------
    UnreadableImage
        A float image with values outside [0, 255], NaN or infinite.
    """
    mode = image.mode
    if mode.startswith("I;16") or mode == "I":
        bits = bits or _declared_bits(image) or 16
        values = np.asarray(image, dtype=np.float64) * (255.0 / (2 ** bits - 1))
    elif mode == "F":
        values = np.asarray(image, dtype=np.float64)
        if not np.isfinite(values).all():
            raise UnreadableImage("float image with NaN or infinite values")
        low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
        if low < 0 or high > 255:
            raise UnreadableImage(f"float image with values in [{low:g}, {high:g}]: faceexp "
                                  "reads float images with values in [0, 1] (or [0, 255])")
        if high <= 1:
            values = values * 255.0
    else:
        return image
    return Image.fromarray(np.clip(np.round(values), 0, 255).astype(np.uint8), mode="L")


def as_viewed(image: Image.Image) -> Image.Image:
    """``image`` upright (its EXIF orientation applied) and 8 bits per sample (:func:`to_8bit`).

    A new image when anything changed, else ``image`` itself. An EXIF block that
    cannot be parsed is ignored.
    """
    bits = _declared_bits(image)  # before a transpose drops the TIFF tags
    try:
        orientation = image.getexif().get(_ORIENTATION, 1)
    except Exception:  # noqa: BLE001 - a corrupt EXIF block: Pillow raises many kinds
        orientation = 1
    if orientation in (2, 3, 4, 5, 6, 7, 8):
        image = ImageOps.exif_transpose(image)
    return to_8bit(image, bits=bits)
