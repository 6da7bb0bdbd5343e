"""Photos of none of the classes: a novelty score per photo, and the threshold above which
a photo is called unknown.

A small registry (calibrate.novelty picks a method by name): one module per method, each
with `METHOD`, a NoveltyMethod that owns its fit, its NumPy score and the Keras layer that
computes the same score inside every exported model (transfer.inference.deployed). Methods
are imported when named, so this package itself needs NumPy only (a .tflite `predict`
never loads TensorFlow). docs/novelty.md has what each scores on the shared proxies.

Higher is more novel. The threshold is the validation split's `accept` quantile, taken
so that at least that share of in-class validation photos is accepted (novelty <= it).
"""

import importlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from transfer.config.schema import NOVELTY_METHODS as NAMES  # each a module here: <name>.py
from transfer.core.errors import PipelineError


@dataclass(frozen=True)
class NoveltyMethod:
    """fit(features, labels, num_classes, settings, seed) -> statistics (name -> array);
    scores(features, calibrated probabilities, statistics, settings) -> (N,), higher more novel;
    layer(statistics, settings, **options) -> (a Keras layer computing scores, its weights).
    settings: calibration.json's `novelty` (see settings)."""

    name: str
    uses_features: bool  # True: scored on pooled features (fitted on the training split's); False: on logits
    fit: Callable
    scores: Callable
    layer: Callable
    keys: tuple = ()  # the calibrate section's keys that this method reads
    # TFLite op types of its layer that the int8 export keeps in float32 (transfer.deploy.export.tflite).
    float_ops: tuple = ()

    def settings(self, config):
        """calibration.json's `novelty` before its threshold: the method, `accept`, and the
        method's own keys from params.yaml's calibrate section."""
        return {"method": self.name, "accept": config["accept"], **{key: config[key] for key in self.keys}}


def get_method(name):
    if name not in NAMES:
        raise PipelineError(f"unknown novelty method {name!r}: one of {', '.join(NAMES)}")
    return importlib.import_module(f"{__name__}.{name}").METHOD


def all_methods():
    return [get_method(name) for name in NAMES]


def is_known(scores, threshold):
    """The one rule for a known photo: its novelty score at or below the threshold (NumPy
    arrays, or tensors inside a graph)."""
    return scores <= threshold


def threshold_accepting(scores, accept):
    """A threshold at or below which at least `accept` of scores fall: halfway between the
    last score it must accept and the next, so that the few-ulp differences between NumPy's
    float64 and a float32 graph (or TFLite) do not move a photo across it."""
    scores = np.sort(np.asarray(scores, dtype=np.float64))
    last = max(0, int(np.ceil(accept * len(scores))) - 1)
    if last + 1 == len(scores):
        return float(scores[last])
    return float((scores[last] + scores[last + 1]) / 2)


def accepted_share(scores, threshold):
    return float(np.mean(is_known(np.asarray(scores), threshold))) if len(scores) else None
