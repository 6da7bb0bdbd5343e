"""params.yaml's schema: every section's keys, what each may be, and the shipped defaults.

The names a key may take are declared here or read from the registry that owns them
(data.source: transfer.data.sources; model.backbone: transfer.models.backbones, checked in
transfer.config.params.validate), so that checking params.yaml loads no network code.
"""

import math

from transfer.data.sources import SOURCES

# transfer.distribute.runtime resolves these; the names live here so that checking params.yaml loads no
# more code than the stage needs (a stage's code deps are its imports: tests/test_dvc_yaml.py).
STRATEGIES = ("auto", "default", "mirrored", "multi_worker")
PRECISIONS = ("auto", "off", "float16", "bfloat16")
# What runs a network (transfer.inference.runners): extract.runtime, evaluate.runtime, and
# `transfer predict --runtime` (which adds auto).
RUNTIMES = ("keras", "litert")
# The names only: importing transfer.training.recipe here would load TensorFlow.
OPTIMIZERS = ("rmsprop", "adam", "adamw")
SCHEDULES = ("constant", "cosine")
CLASS_WEIGHTS = ("none", "balanced")
# The novelty methods, each a module transfer.calibration.novelty.<name> (its registry reads this).
NOVELTY_METHODS = ("knn", "mahalanobis", "max_probability")
# What to label next (transfer.labelling.strategies, whose registry holds these names).
SELECT_STRATEGIES = ("auto", "random", "typical", "margin", "diverse")


def _positive_int(value):
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _non_negative_int(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _positive_number(value):
    return _is_number(value) and value > 0


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _layer_index_or_fraction(value):
    # The range depends on the backbone: transfer.models.backbones.Backbone.layer_index checks it.
    return isinstance(value, float) or _non_negative_int(value)


def _fraction_below_one(value):
    return _is_number(value) and 0 <= value < 1


def _fraction_in_open_unit(value):
    return _is_number(value) and 0 < value < 1


def _similarity(value):
    return _is_number(value) and -1 < value <= 1


def _split(value):
    return (
        isinstance(value, list)
        and len(value) == 3
        and all(_is_number(part) and part > 0 for part in value)
        and abs(sum(value) - 1) < 1e-6
    )


def _non_empty_string(value):
    return isinstance(value, str) and value.strip() != ""


def _boolean(value):
    return isinstance(value, bool)


def _one_of(choices):
    return lambda value: value in choices, f"one of {', '.join(choices)}"


def _key(rule, default):
    check, allowed = rule
    return check, allowed, default


def _section(**keys):
    return {name: _key(*entry) for name, entry in keys.items()}


INT = (_positive_int, "a positive integer")
BOOLEAN = (_boolean, "true or false")
FRACTION = (_fraction_below_one, "a number in [0, 1)")

# Keys that the two training phases share, declared once: how each phase optimizes.
PHASE_KEYS = _section(
    optimizer=(_one_of(OPTIMIZERS), "rmsprop"),
    schedule=(_one_of(SCHEDULES), "constant"),
    warmup_epochs=((_non_negative_int, "an integer >= 0, below epochs"), 0),
    label_smoothing=(FRACTION, 0.0),
    early_stopping=((_non_negative_int, "a patience in epochs, >= 0 (0: off)"), 0),
    class_weight=(_one_of(CLASS_WEIGHTS), "none"),
)

# section -> key -> (check, description of what is allowed, the shipped default). The
# defaults are TensorFlow's tutorial's; tests/test_report.py keeps params.yaml equal to them,
# and the report lists what a run changed from them.
SCHEMA = {
    "data": _section(
        source=(_one_of(tuple(SOURCES)), "tfds"),
        path=((_non_empty_string, "a folder path"), "data/raw"),
        tfds_name=(
            (_non_empty_string, "a TensorFlow Datasets name, e.g. cats_vs_dogs or tf_flowers"),
            "cats_vs_dogs",
        ),
        tfds_dir=((_non_empty_string, "default (tfds's own data dir) or a TFDS data dir path"), "default"),
        image_size=((_positive_int, "a positive integer, at least the backbone's minimum"), 100),
        split=((_split, "three positive fractions (train, validation, test) summing to 1"), [0.8, 0.1, 0.1]),
        seed=((_non_negative_int, "an integer >= 0"), 42),
        unlabeled=(
            (_non_empty_string, "none, or a folder of unlabelled photos (a folder source's pool)"),
            "none",
        ),
    ),
    "model": _section(
        # Checked against the registry by transfer.models.backbones.check_params, part of validate.
        backbone=((_non_empty_string, "a backbone name, e.g. mobilenet_v2"), "mobilenet_v2"),
        weights=((_non_empty_string, "imagenet, none, or a path to an .h5 weights file"), "imagenet"),
    ),
    "extract": _section(batch_size=(INT, 64), runtime=(_one_of(RUNTIMES), "keras")),
    "audit": _section(
        folds=((lambda value: _positive_int(value) and value >= 2, "an integer >= 2"), 5),
        regularization=((_positive_number, "a positive number"), 0.01),
        neighbours=(INT, 10),
        candidate_similarity=((_similarity, "a cosine similarity in (-1, 1)"), 0.7),
        duplicate_similarity=((_similarity, "a correlation in (-1, 1]"), 0.9),
        outlier_iqr=((_positive_number, "a positive number"), 3.0),
    ),
    "train_head": {
        **_section(
            epochs=(INT, 2),
            learning_rate=((_positive_number, "a positive number"), 0.0001),
            batch_size=(INT, 32),
            shuffle_buffer=(INT, 1000),
            dropout=(FRACTION, 0.0),
        ),
        **PHASE_KEYS,
    },
    "finetune": {
        **_section(
            epochs=(INT, 2),
            fine_tune_at=(
                (
                    _layer_index_or_fraction,
                    "an integer layer index of the base, or a fraction of its layers with a decimal point",
                ),
                100,
            ),
            learning_rate=((_positive_number, "a positive number"), 1e-05),
            batch_size=(INT, 32),
            shuffle_buffer=(INT, 1000),
            augment=(BOOLEAN, False),
            augment_flip=(BOOLEAN, True),
            augment_rotation=((_fraction_below_one, "a fraction of a turn in [0, 1)"), 0.2),
            augment_zoom=(FRACTION, 0.0),
            augment_contrast=(FRACTION, 0.0),
            cache_bottom=(BOOLEAN, True),
        ),
        **PHASE_KEYS,
    },
    "calibrate": _section(
        novelty=(_one_of(NOVELTY_METHODS), "knn"),
        accept=((_fraction_in_open_unit, "a fraction in (0, 1)"), 0.98),
        neighbours=(INT, 5),
        bank_size=(INT, 10000),
        batch_size=(INT, 64),
    ),
    "evaluate": _section(
        batch_size=(INT, 64),
        tta=(BOOLEAN, False),
        runtime=(_one_of(RUNTIMES), "keras"),
        unknown_photos=((_non_empty_string, "a folder path"), "data/unknown"),
    ),
    "export": _section(calibration_images=(INT, 200), latency_images=(INT, 50)),
    "select": _section(
        strategy=(_one_of(SELECT_STRATEGIES), "auto"),
        batch=(INT, 100),
        batch_size=(INT, 64),
    ),
    "runtime": _section(
        strategy=(_one_of(STRATEGIES), "auto"),
        mixed_precision=(_one_of(PRECISIONS), "auto"),
        threads=((_non_negative_int, "an integer >= 0 (0: TensorFlow's default)"), 0),
    ),
}

DEFAULTS = {
    section: {name: default for name, (_, _, default) in keys.items()} for section, keys in SCHEMA.items()
}
