"""Decoding any image file to RGB pixels at the pipeline's size: one rule for prepare,
predict and export's measurement (the SavedModel decodes in-graph to match it: transfer.deploy.serving)."""

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from transfer.core.errors import PipelineError, one_line

# Errors PIL raises for files that are not (complete) images.
UNREADABLE_IMAGE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)


# The formats the project decodes, by Pillow's names: the one list behind what a folder search
# picks up and what a file named on the command line may be. JPEG's decoder also opens MPO
# (many cameras' JPEGs). HEIC/HEIF needs a Pillow plugin (pillow-heif) not installed here.
PHOTO_FORMATS = ("JPEG", "PNG", "GIF", "BMP", "WEBP", "TIFF", "AVIF")
OPENED_AS = {"MPO": "JPEG"}
# Pillow's modes of one channel of 16 (or 32) bits: scaled to 8 bits here, where Pillow's own
# convert("RGB") would clip them (every value above 255 white).
HIGH_BIT_DEPTH_GRAY = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def load_image(path, image_size):
    """Decode one of PHOTO_FORMATS to RGB uint8 at image_size x image_size.

    EXIF orientation is applied, so phone photos are upright; grayscale, CMYK,
    palette and alpha images are converted to RGB (alpha is dropped); 16-bit
    images keep their high byte (value // 256, as libpng and Pillow reduce 16-bit
    RGB, and as the SavedModel's in-graph decoder does). Raises one of
    UNREADABLE_IMAGE_ERRORS for a file that is not a complete image of those formats;
    PIL refuses images over ~179 megapixels (DecompressionBombError).
    """
    with warnings.catch_warnings():
        # PIL warns before it refuses; the refusal itself is the error we report.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(path, formats=PHOTO_FORMATS) as image:
            image = ImageOps.exif_transpose(image)
            return resize_image(as_rgb(image), image_size)


def as_rgb(image):
    """A PIL image in RGB, 8 bits per channel (see load_image)."""
    if image.mode in HIGH_BIT_DEPTH_GRAY:
        # Values as 16-bit, even in mode I (32-bit), which Pillow uses for 16-bit PNGs too.
        gray = np.clip(np.asarray(image, dtype=np.int64), 0, 65535).astype(np.uint16)
        return Image.fromarray(eight_bits(gray), "L").convert("RGB")
    if image.mode == "F":
        raise ValueError("32-bit floating-point images have no fixed range: convert them to 8 or 16 bits")
    return image.convert("RGB")


def eight_bits(pixels):
    """uint8 pixels of a uint8 or uint16 array: 16-bit values keep their high byte."""
    if pixels.dtype == np.uint8:
        return pixels
    if pixels.dtype == np.uint16:
        return (pixels >> 8).astype(np.uint8)
    raise ValueError(f"pixels of type {pixels.dtype}: expected 8 or 16-bit integers")


def try_load_image(path, image_size):
    """(image, None), or (None, a one-line reason) for a file that is not a complete image."""
    try:
        return load_image(path, image_size), None
    except UNREADABLE_IMAGE_ERRORS as error:
        if Path(path).suffix.lower() in (".heic", ".heif"):
            return None, "HEIC/HEIF is not decoded here (it needs the pillow-heif plugin): convert it to JPEG"
        return None, one_line(error) or type(error).__name__


def resize_image(image, image_size):
    """Squash a PIL image or an HxWx3 uint8 array to a square, as the tutorial does."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    resized = image.resize((image_size, image_size), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.uint8)


def photo_suffixes():
    """The file name endings of PHOTO_FORMATS (Pillow's registry): what a folder search picks up."""
    Image.init()
    return {
        suffix
        for suffix, name in Image.registered_extensions().items()
        if OPENED_AS.get(name, name) in PHOTO_FORMATS
    }


IMAGE_SUFFIXES = photo_suffixes()


def find_images(paths):
    """Files to predict, in input order: files as given, folders searched recursively."""
    files = []
    for path in map(Path, paths):
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            files.extend(
                found
                for found in sorted(path.rglob("*"))
                if found.is_file()
                and found.suffix.lower() in IMAGE_SUFFIXES
                and not any(part.startswith(".") for part in found.relative_to(path).parts)
            )
        else:
            raise PipelineError(f"no such file or folder: {path}")
    return files
