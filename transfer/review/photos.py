"""A photo as a card shows it: the original file, upright (EXIF orientation applied) and
downsized by the server, as a JPEG. A source without files (tfds) shows the prepared pixels,
which are the photo as the pipeline saw it."""

import io
import warnings

import numpy as np
from PIL import Image, ImageOps

from transfer.data.images import PHOTO_FORMATS, UNREADABLE_IMAGE_ERRORS, as_rgb

LONGEST_SIDE = 480  # px: a card shows a photo at up to about half that, sharp on a 2x screen


def jpeg_bytes(image):
    image.thumbnail((LONGEST_SIDE, LONGEST_SIDE), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def file_jpeg(path):
    """The file as a card's JPEG; None when it is no longer an image (deleted or damaged since
    the pipeline ran)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path, formats=PHOTO_FORMATS) as image:
                return jpeg_bytes(as_rgb(ImageOps.exif_transpose(image)))
    except UNREADABLE_IMAGE_ERRORS:
        return None


def prepared_jpeg(shard_file, row):
    with np.load(shard_file) as shard:
        return jpeg_bytes(Image.fromarray(shard["images"][row]))
