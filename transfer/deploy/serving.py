"""The SavedModel's in-graph image decoding: encoded bytes to the model's input, made to
match the pipeline's Pillow preprocessing (transfer.data.images.load_image), EXIF
orientation included, so TF Serving clients can send photos as they are."""

import tensorflow as tf

# EXIF sits in a JPEG's APP1 segment, which comes right after the start marker
# (or after a JFIF APP0) and is at most 64 KiB long.
EXIF_SEARCH_BYTES = 65536
EXIF_SIGNATURE = b"Exif\x00\x00"
ORIENTATION_TAG = 0x0112
MOST_IFD_ENTRIES = 64  # IFD0 of a camera's EXIF holds a dozen or two


def exif_orientation(image_bytes):
    """The EXIF orientation (1-8) of an encoded image, in-graph; 1 (as stored) for a file
    that is not a JPEG, has no EXIF, or whose orientation cannot be read."""
    head = tf.io.decode_raw(tf.strings.substr(image_bytes, 0, EXIF_SEARCH_BYTES), tf.uint8)
    head = tf.cast(tf.concat([head, tf.zeros([16], tf.uint8)], 0), tf.int64)  # short files: no special case
    length = tf.shape(head, out_type=tf.int64)[0]

    def byte_at(index):
        return tf.gather(head, tf.clip_by_value(index, 0, length - 1))

    windows = length - len(EXIF_SIGNATURE)
    found = tf.ones([windows], tf.bool)
    for offset, value in enumerate(EXIF_SIGNATURE):
        found &= head[offset : offset + windows] == value
    tiff = tf.argmax(tf.cast(found, tf.int32), output_type=tf.int64) + len(EXIF_SIGNATURE)
    little_endian = byte_at(tiff) == ord("I")  # "II": Intel order; "MM": Motorola order

    def unsigned(index, width):
        parts = [byte_at(index + step) for step in range(width)]
        little = sum(part * 256**step for step, part in enumerate(parts))
        big = sum(part * 256**step for step, part in enumerate(reversed(parts)))
        return tf.where(little_endian, little, big)

    first_ifd = tiff + unsigned(tiff + 4, 4)
    entries = first_ifd + 2 + 12 * tf.range(tf.minimum(unsigned(first_ifd, 2), MOST_IFD_ENTRIES))
    values = tf.where(unsigned(entries, 2) == ORIENTATION_TAG, unsigned(entries + 8, 2), 0)
    orientation = tf.reduce_max(tf.concat([values, [0]], 0))
    is_jpeg = (head[0] == 0xFF) & (head[1] == 0xD8)
    readable = is_jpeg & tf.reduce_any(found) & (orientation >= 1) & (orientation <= 8)
    return tf.where(readable, orientation, 1)


def upright(image, orientation):
    """An HxWxC image as it is meant to be seen: EXIF orientation 1-8 undone, as
    Pillow's ImageOps.exif_transpose does."""
    transposed = tf.transpose(image, [1, 0, 2])
    return tf.switch_case(
        tf.cast(orientation - 1, tf.int32),
        [
            lambda: image,  # 1: as stored
            lambda: tf.reverse(image, [1]),  # 2: mirrored left-right
            lambda: tf.reverse(image, [0, 1]),  # 3: upside down
            lambda: tf.reverse(image, [0]),  # 4: mirrored top-bottom
            lambda: transposed,  # 5: mirrored along the main diagonal
            lambda: tf.reverse(transposed, [1]),  # 6: stored turned a quarter counter-clockwise
            lambda: tf.reverse(transposed, [0, 1]),  # 7: mirrored along the other diagonal
            lambda: tf.reverse(transposed, [0]),  # 8: stored turned a quarter clockwise
        ],
    )


def decode_for_serving(image_bytes, size):
    """Encoded bytes -> an upright size x size float32 image, values 0-255, in-graph.

    Made to match the pipeline's and `predict`'s Pillow preprocessing
    (transfer.data.images.load_image): JPEGs decoded with libjpeg's accurate integer
    DCT (Pillow's), EXIF orientation applied, an antialiased bilinear resize
    (Pillow's bilinear widens its filter when shrinking, as antialias=True
    does) rounded to whole values. On real photos the two differ by about 0.1
    of a level on average, at most 1; the export stage measures what is left."""
    is_jpeg = tf.strings.substr(image_bytes, 0, 2) == b"\xff\xd8"
    image = tf.cond(
        is_jpeg,
        lambda: tf.io.decode_jpeg(image_bytes, channels=3, dct_method="INTEGER_ACCURATE"),
        lambda: tf.io.decode_image(image_bytes, channels=3, expand_animations=False),
    )
    image = tf.image.resize(tf.cast(image, tf.float32), [size, size], antialias=True)
    # Turned after the resize, which commutes with it (a separable, symmetric filter to a
    # square): on the decoded uint8 pixels, Grappler would move the cast after the turn,
    # and oneDNN logs a line for uint8 transposes on CPUs without AVX-512.
    image = upright(image, exif_orientation(image_bytes))
    return tf.round(tf.clip_by_value(image, 0, 255))
