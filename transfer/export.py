"""Export the fine-tuned model for serving (SavedModel) and for phones (TFLite).

- SavedModel: a `serve` signature (also `serving_default`) that takes encoded
  image bytes (JPEG, PNG, GIF, BMP) and returns `label` (class name),
  `score` (its probability), `probabilities` (of every class, K wide) and,
  for two classes, `probability` (of the second class). Decoding, a JPEG's
  EXIF orientation and resizing run inside the graph, as TF Serving needs; the
  decision is the Task's. The class names are also in `assets.extra/classes.json`.
- TFLite float32 and int8: RGB images at the model's size, values 0-255, in;
  the logits out (one for two classes, K for K; probabilities are their
  sigmoid/softmax, see transfer.task). The [-1, 1] scaling is inside; int8
  quantizes weights and activations (calibrated on training images) and keeps
  a float interface. The class names are in the file's metadata.
"""

import json
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from transfer.litert import tflite_bytes
from transfer.predict import CLASSES_FILE, TFLITE_CLASSES_METADATA


def classes_json(task):
    return json.dumps({"class_names": list(task.class_names)}) + "\n"


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
    (transfer.data.load_image): JPEGs decoded with libjpeg's accurate integer
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


def export_saved_model(model, task, path):
    """Write a SavedModel whose signature maps encoded image bytes to label and score."""
    size = model.input_shape[1]
    names = tf.constant(list(task.class_names))

    def serve(image_bytes):
        images = tf.map_fn(
            lambda encoded: decode_for_serving(encoded, size),
            image_bytes,
            fn_output_signature=tf.TensorSpec([size, size, 3], tf.float32),
        )
        predicted, score, probabilities = task.serving_outputs(model(images, training=False))
        outputs = {"label": tf.gather(names, predicted), "score": score, "probabilities": probabilities}
        if task.binary:
            outputs["probability"] = probabilities[:, 1]  # as before K classes existed
        return outputs

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        name="serve", fn=serve, input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")]
    )
    archive.write_out(str(path), verbose=False)
    extra = Path(path) / "assets.extra"  # TF Serving's place for files that travel with a model
    extra.mkdir(exist_ok=True)
    (extra / CLASSES_FILE).write_text(classes_json(task))


def export_tflite(saved_model, task, path, representative_images=None, progress=None):
    """Write a .tflite file from plain_saved_model's folder: float32, or int8 when
    representative images are given (progress, if any, counts them as calibration runs)."""
    converted = tflite_bytes(saved_model, representative_images, progress)
    Path(path).write_bytes(with_class_names(converted, task))


def with_class_names(flatbuffer, task):
    """The .tflite file with the class names added to its metadata, so they travel with it."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(flatbuffer)
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(classes_json(task).encode(), dtype=np.uint8)
    model.buffers.append(buffer)
    metadata = schema.MetadataT()
    metadata.name = TFLITE_CLASSES_METADATA
    metadata.buffer = len(model.buffers) - 1
    model.metadata = [*(model.metadata or []), metadata]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def load_serving(path):
    """The serving signature of a SavedModel on disk: image_bytes -> label, score, probabilities."""
    return tf.saved_model.load(str(path)).signatures["serving_default"]


def serving_probabilities(serve, encoded_images, batch_size=32):
    """(N, num_classes) probabilities of every class for each encoded image."""
    outputs = [
        serve(image_bytes=tf.constant(encoded_images[start : start + batch_size]))["probabilities"].numpy()
        for start in range(0, len(encoded_images), batch_size)
    ]
    return np.concatenate(outputs)


def mean_latency_ms(predict_one, inputs, repeats=1):
    """Mean wall time of one single-image call, in milliseconds (after one warm-up call)."""
    predict_one(inputs[0])
    start = time.perf_counter()
    for _ in range(repeats):
        for item in inputs:
            predict_one(item)
    return 1000 * (time.perf_counter() - start) / (repeats * len(inputs))


def file_size(path):
    """Bytes of a file, or of every file under a folder."""
    path = Path(path)
    if path.is_dir():
        return sum(file.stat().st_size for file in path.rglob("*") if file.is_file())
    return path.stat().st_size
