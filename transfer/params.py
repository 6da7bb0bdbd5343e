"""params.yaml: loading and one schema that every stage checks first.

Each stage validates the whole file before doing any work, so a typo in a
late stage's section fails the first stage that runs instead of an hour in.
"""

import difflib
import math
import re
from pathlib import Path

import yaml

from transfer.backbones import check_params as check_model_params
from transfer.errors import PipelineError, one_line

# How to take back a `dvc exp run -S` whose run failed: DVC leaves the value in params.yaml.
UNDO_HINT = "`git checkout params.yaml` restores the committed file"

SOURCES = ("tfds", "folder")
# transfer.runtime resolves these; the names live here so that checking params.yaml loads no
# more code than the stage needs (a stage's code deps are its imports: tests/test_dvc_yaml.py).
STRATEGIES = ("auto", "default", "mirrored", "multi_worker")
PRECISIONS = ("auto", "off", "float16", "bfloat16")
INFERENCE_RUNTIMES = ("tensorflow", "litert")  # what runs a frozen network: see transfer.litert
# The names only: importing transfer.training here would load TensorFlow.
OPTIMIZERS = ("rmsprop", "adam", "adamw")
SCHEDULES = ("constant", "cosine")
CLASS_WEIGHTS = ("none", "balanced")
NOVELTY_METHODS = ("knn", "mahalanobis", "max_probability")  # transfer.novelty.METHODS


def _positive_int(value):
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _non_negative_int(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _positive_number(value):
    return _is_number(value) and value > 0


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _layer_index_or_fraction(value):
    # The range depends on the backbone: transfer.backbones.Backbone.layer_index checks it.
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
        source=(_one_of(SOURCES), "tfds"),
        path=((_non_empty_string, "a folder path"), "data/raw"),
        tfds_name=(
            (_non_empty_string, "a TensorFlow Datasets name, e.g. cats_vs_dogs or tf_flowers"),
            "cats_vs_dogs",
        ),
        tfds_dir=((_non_empty_string, "default (tfds's own data dir) or a TFDS data dir path"), "default"),
        image_size=((_positive_int, "a positive integer, at least the backbone's minimum"), 100),
        split=((_split, "three positive fractions (train, validation, test) summing to 1"), [0.8, 0.1, 0.1]),
        seed=((_non_negative_int, "an integer >= 0"), 42),
    ),
    "model": _section(
        # Checked against the registry by transfer.backbones.check_params, part of validate.
        backbone=((_non_empty_string, "a backbone name, e.g. mobilenet_v2"), "mobilenet_v2"),
        weights=((_non_empty_string, "imagenet, none, or a path to an .h5 weights file"), "imagenet"),
    ),
    "extract": _section(batch_size=(INT, 64), runtime=(_one_of(INFERENCE_RUNTIMES), "tensorflow")),
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
        runtime=(_one_of(INFERENCE_RUNTIMES), "tensorflow"),
        unknown_photos=((_non_empty_string, "a folder path"), "data/unknown"),
    ),
    "export": _section(calibration_images=(INT, 200), latency_images=(INT, 50)),
    "runtime": _section(
        strategy=(_one_of(STRATEGIES), "auto"),
        mixed_precision=(_one_of(PRECISIONS), "auto"),
        threads=((_non_negative_int, "an integer >= 0 (0: TensorFlow's default)"), 0),
    ),
}

DEFAULTS = {
    section: {name: default for name, (_, _, default) in keys.items()} for section, keys in SCHEMA.items()
}


class _Loader(yaml.SafeLoader):
    """safe_load, but floats as YAML 1.2 writes them: `dvc exp run -S lr=0.00001`
    stores 1e-05, which PyYAML's YAML 1.1 rules would read as a string."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def _did_you_mean(name, candidates):
    close = difflib.get_close_matches(name, candidates, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def validate(params):
    """Raise PipelineError naming the first key that breaks the schema."""
    if not isinstance(params, dict):
        raise PipelineError("params.yaml must be a mapping of sections")
    for section, value in params.items():
        if section not in SCHEMA:
            raise PipelineError(f"params.yaml: unknown section '{section}'{_did_you_mean(section, SCHEMA)}")
        if not isinstance(value, dict):
            raise PipelineError(f"params.yaml: section '{section}' must be a mapping")
    for section, keys in SCHEMA.items():
        values = params.get(section)
        if values is None:
            raise PipelineError(f"params.yaml: missing section '{section}'")
        for key in values:
            if key not in keys:
                raise PipelineError(f"params.yaml: unknown key '{section}.{key}'{_did_you_mean(key, keys)}")
        for key, (check, allowed, _) in keys.items():
            if key not in values:
                raise PipelineError(f"params.yaml: missing key '{section}.{key}'")
            if not check(values[key]):
                raise PipelineError(
                    f"params.yaml: {section}.{key} = {values[key]!r} is invalid: must be {allowed}"
                )
    for section in ("train_head", "finetune"):
        values = params[section]
        if values["warmup_epochs"] >= values["epochs"]:
            raise PipelineError(
                f"params.yaml: {section}.warmup_epochs = {values['warmup_epochs']} is invalid: "
                f"must be below {section}.epochs ({values['epochs']})"
            )
    # What the stages that build a network need of the model section, checked here so the first
    # stage of a run refuses it, not extract after prepare has run.
    check_model_params(params)
    return params


def load_params(path="params.yaml"):
    """Read and validate params.yaml; returns the nested dict."""
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"params file not found: {path}")
    try:
        params = yaml.load(path.read_text(), Loader=_Loader)
    except yaml.YAMLError as error:
        raise PipelineError(f"{path} is not valid YAML: {one_line(error)}") from None
    try:
        return validate(params)
    except PipelineError as error:
        # `dvc exp run -S` leaves the value it set in the workspace's params.yaml when the run fails.
        raise PipelineError(f"{error} (a value set by `dvc exp run -S`? {UNDO_HINT})") from None
