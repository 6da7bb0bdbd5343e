"""The standard TFLite Metadata of an exported .tflite file: what MediaPipe Tasks'
ImageClassifier and LiteRT's tooling read (docs/model.md, "Running an export in an app").

Written with the metadata flatbuffer schema that ships in the mediapipe wheel (its
`metadata_writers` do not import in mediapipe 1.2.3, a compiled module is missing, and
tflite-support's writers need protobuf < 4, below TensorFlow's): the model's name and
description; the input as an RGB image whose NormalizationOptions (mean 0, std 1) hand the
graph the 0-255 values it expects; one entry per output, in the graph's output order, the
`probabilities` output carrying the class names as its axis labels (labels.txt, zipped onto
the end of the file as the schema prescribes, where `transfer predict` reads them too).
"""

import io
import zipfile

from transfer.inference.bundle import TFLITE_LABELS_FILE as LABELS_FILE

METADATA_NAME = "TFLITE_METADATA"  # the model metadata entry the schema's readers look up
METADATA_IDENTIFIER = b"M001"
MIN_PARSER_VERSION = "1.0.0"  # image properties, normalization and axis labels are all 1.0 features

OUTPUT_DESCRIPTIONS = {
    "probabilities": "Calibrated probabilities of every class, in the order of labels.txt.",
    "known": "1.0 when the photo looks like a class the model was trained on (novelty at or "
    "below the threshold), 0.0 for a photo of none of them.",
    "novelty": "Novelty score ({method}): known when it is at or below {threshold:.6g}.",
    "logits": "Calibrated logits (divided by the temperature): one for two classes (its sigmoid "
    "is the second class's probability), one per class for more.",
}


def standard_metadata(task, calibration, image_size, output_names):
    """The TFLite metadata flatbuffer (bytes) of a deployed model whose outputs are
    output_names, in the graph's order."""
    import flatbuffers
    from mediapipe.tasks.metadata import metadata_schema_py_generated as schema

    subgraph = schema.SubGraphMetadataT()
    subgraph.inputTensorMetadata = [image_input(schema, image_size)]
    subgraph.outputTensorMetadata = [output(schema, name, calibration["novelty"]) for name in output_names]
    model = schema.ModelMetadataT()
    model.name = f"{task.num_classes}-class image classifier"
    model.description = (
        f"Classifies {image_size}x{image_size} RGB photos into {', '.join(task.class_names)}, "
        "with calibrated probabilities and a known flag for photos of none of these classes."
    )
    model.subgraphMetadata = [subgraph]
    model.minParserVersion = MIN_PARSER_VERSION
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), METADATA_IDENTIFIER)
    return bytes(builder.Output())


def image_input(schema, image_size):
    tensor = schema.TensorMetadataT()
    tensor.name = "image"
    tensor.description = f"An RGB photo resized to {image_size}x{image_size}, values 0-255."
    tensor.content = schema.ContentT()
    tensor.content.contentPropertiesType = schema.ContentProperties.ImageProperties
    tensor.content.contentProperties = schema.ImagePropertiesT()
    tensor.content.contentProperties.colorSpace = schema.ColorSpaceType.RGB
    normalization = schema.NormalizationOptionsT()
    normalization.mean, normalization.std = [0.0], [1.0]  # the graph scales 0-255 itself
    unit = schema.ProcessUnitT()
    unit.optionsType = schema.ProcessUnitOptions.NormalizationOptions
    unit.options = normalization
    tensor.processUnits = [unit]
    tensor.stats = value_range(schema, 0.0, 255.0)
    return tensor


def output(schema, name, novelty):
    tensor = schema.TensorMetadataT()
    tensor.name = name
    tensor.description = OUTPUT_DESCRIPTIONS[name].format(**novelty)
    tensor.content = schema.ContentT()
    tensor.content.contentPropertiesType = schema.ContentProperties.FeatureProperties
    tensor.content.contentProperties = schema.FeaturePropertiesT()
    if name in ("probabilities", "known"):
        tensor.stats = value_range(schema, 0.0, 1.0)
    if name == "probabilities":
        labels = schema.AssociatedFileT()
        labels.name = LABELS_FILE
        labels.description = "The class names, one per line, in the order of the probabilities."
        labels.type = schema.AssociatedFileType.TENSOR_AXIS_LABELS
        tensor.associatedFiles = [labels]
    return tensor


def value_range(schema, low, high):
    stats = schema.StatsT()
    stats.min, stats.max = [low], [high]
    return stats


def with_labels(flatbuffer, class_names):
    """The .tflite bytes with labels.txt zipped onto their end (the schema's associated files),
    dated 1980-01-01 so that the same model gives the same bytes."""
    content = io.BytesIO(flatbuffer)
    content.seek(0, io.SEEK_END)
    with zipfile.ZipFile(content, "a") as archive:
        entry = zipfile.ZipInfo(LABELS_FILE, date_time=(1980, 1, 1, 0, 0, 0))
        archive.writestr(entry, "".join(f"{name}\n" for name in class_names))
    return content.getvalue()
