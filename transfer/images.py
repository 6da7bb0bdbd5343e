"""Decoding any image file to RGB pixels at the pipeline's size: one rule for prepare,
predict and export's measurement (transfer.export decodes in-graph to match it)."""

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from transfer.errors import PipelineError, one_line

# Errors PIL raises for files that are not (complete) images.
UNREADABLE_IMAGE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)


def load_image(path, image_size):
    """Decode any image PIL reads to RGB uint8 at image_size x image_size.

    EXIF orientation is applied, so phone photos are upright; grayscale, CMYK,
    palette and alpha images are converted to RGB (alpha is dropped). Raises
    one of UNREADABLE_IMAGE_ERRORS for a file that is not a complete image;
    PIL refuses images over ~179 megapixels (DecompressionBombError).
    """
    with warnings.catch_warnings():
        # PIL warns before it refuses; the refusal itself is the error we report.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image)
            return resize_image(image.convert("RGB"), image_size)


def try_load_image(path, image_size):
    """(image, None), or (None, a one-line reason) for a file that is not a complete image."""
    try:
        return load_image(path, image_size), None
    except UNREADABLE_IMAGE_ERRORS as error:
        return None, one_line(error) or type(error).__name__


def resize_image(image, image_size):
    """Squash a PIL image or an HxWx3 uint8 array to a square, as the tutorial does."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    resized = image.resize((image_size, image_size), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.uint8)


# What a folder search picks up; files named on the command line are always tried.
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff"}


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
