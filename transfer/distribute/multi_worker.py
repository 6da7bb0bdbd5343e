"""Training on several machines: Keras 3's `fit` under MultiWorkerMirroredStrategy, the
cluster's time limits, and one clear line when a worker is missing or dies.

Keras 3.15's `fit` fails under MultiWorkerMirroredStrategy with two or more workers
(keras-team/keras#20585), in two functions of keras/src/backend/tensorflow/trainer.py:

1. `TensorFlowTrainer._maybe_symbolic_build` draws the first batch to build the model
   and reduces it over the workers with `strategy.reduce`; it only needs its shapes, so
   the wrapper builds from the dataset's element spec and draws nothing.
2. `reduce_per_replica` means scalar metric logs over `axis=0`, which a scalar has not;
   over the replicas alone is `axis=None`.

`patch_keras` wraps both. A wrapper changes what happens only under a strategy in
multi-worker mode (a MultiWorkerMirroredStrategy whose cluster has two or more
workers); everything else calls Keras's own code, so single-process and mirrored runs
are untouched. The wrappers are written against the Keras versions in
PATCHED_KERAS and refused for any other: tests/test_runtime.py runs Keras's own `fit`
on two workers as a strict expected failure, so the day a Keras release fixes it, that
test fails and this module can go.
"""

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from transfer.core.errors import PipelineError, one_line
from transfer.core.io import file_sha256

# Keras versions whose trainer.py the wrappers below were read against and tested with.
PATCHED_KERAS = ("3.15.",)

# How long a worker waits for every worker of TF_CONFIG's cluster to join; TensorFlow would
# wait forever. TRANSFER_JOIN_TIMEOUT (seconds) sets it. A worker that dies later is noticed
# by TensorFlow's coordination service, whose heartbeats time out after 10 s.
JOIN_TIMEOUT_SECONDS = 300


def in_multi_worker_mode(strategy):
    import tensorflow as tf

    return (
        isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
        and strategy.extended._in_multi_worker_mode()
    )


def patch_keras():
    """Wrap Keras's two failing functions (see the module's docstring); idempotent."""
    import keras
    import tensorflow as tf
    from keras.src import tree
    from keras.src.backend.tensorflow import trainer

    if getattr(trainer, "_multi_worker_patched", False):
        return
    if not keras.__version__.startswith(PATCHED_KERAS):
        raise PipelineError(
            f"runtime.strategy = multi_worker is checked with Keras {', '.join(PATCHED_KERAS)}x only and "
            f"this is Keras {keras.__version__}: install the Keras of requirements.txt"
        )
    keras_symbolic_build = trainer.TensorFlowTrainer._maybe_symbolic_build
    keras_reduce_per_replica = trainer.reduce_per_replica

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        strategy = self._distribute_strategy
        if iterator is None or strategy is None or not in_multi_worker_mode(strategy):
            return keras_symbolic_build(self, iterator=iterator, data_batch=data_batch)
        # Built from the batches' specs: drawing a batch, as Keras does, would start an
        # iteration of the dataset and advance its reshuffle seed, so every epoch would
        # see another order than in one process.
        data_batch = tf.nest.map_structure(
            lambda spec: spec._value_specs[0] if hasattr(spec, "_value_specs") else spec,  # PerReplicaSpec
            iterator._distributed_dataset.element_spec,
        )
        with strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    def reduce_per_replica(values, strategy, reduction):
        if reduction not in ("auto", "mean") or not in_multi_worker_mode(strategy):
            return keras_reduce_per_replica(values, strategy, reduction)
        return tree.map_structure(lambda value: strategy.reduce("MEAN", value, axis=None), values)

    trainer.TensorFlowTrainer._maybe_symbolic_build = _maybe_symbolic_build
    trainer.reduce_per_replica = reduce_per_replica
    trainer._multi_worker_patched = True


# Ends its parent, process argv[1], after argv[2] seconds, with argv[3] on stderr; nothing if
# the parent has gone meanwhile.
_WATCHDOG = """
import os, signal, sys, time
time.sleep(float(sys.argv[2]))
if os.getppid() == int(sys.argv[1]):
    print(sys.argv[3], file=sys.stderr, flush=True)
    os.kill(int(sys.argv[1]), signal.SIGKILL)  # TensorFlow catches SIGTERM (preemption)
"""


def multi_worker_strategy():
    """MultiWorkerMirroredStrategy for TF_CONFIG's cluster. It returns once every worker has
    joined; if one has not within the join timeout, the process ends with one line."""
    import tensorflow as tf

    timeout = os.environ.get("TRANSFER_JOIN_TIMEOUT", str(JOIN_TIMEOUT_SECONDS))
    if not timeout.isdigit() or int(timeout) < 1:
        raise PipelineError(f"TRANSFER_JOIN_TIMEOUT = {timeout!r} is invalid: must be whole seconds >= 1")
    message = (
        f"error: not every worker of TF_CONFIG's cluster joined within {timeout} s: start "
        "`transfer worker STAGE` on each other machine (docs/scale.md)"
    )
    # The strategy waits inside TensorFlow's C++ runtime holding the GIL, where no Python
    # exception, signal handler or thread gets to run: a separate process keeps the time.
    # Nothing has been written yet.
    watchdog = subprocess.Popen([sys.executable, "-c", _WATCHDOG, str(os.getpid()), timeout, message])
    try:
        return tf.distribute.MultiWorkerMirroredStrategy()
    finally:
        watchdog.kill()
        watchdog.wait()


@contextmanager
def cluster_failures(strategy):
    """Turn a collective aborted by a worker that died or left into one PipelineError."""
    import tensorflow as tf

    if not in_multi_worker_mode(strategy):
        yield
        return
    started = time.monotonic()
    try:
        yield
    except (tf.errors.UnavailableError, tf.errors.CancelledError, tf.errors.InternalError) as error:
        message = one_line(error)
        if "Collective ops is aborted by: " not in message:
            raise
        # "... Collective ops is aborted by: <why> The error could be ... [[{{node ...}}]] [Op: ...]"
        reason = message.split("Collective ops is aborted by: ")[-1]
        reason = re.split(r" The tasks have crashed| The error could be| \[\[| \[Op:", reason)[0][:200]
        raise PipelineError(
            f"a worker of the cluster stopped answering {time.monotonic() - started:.0f} s into training "
            f"({reason}); nothing was written: restart every worker and rerun"
        ) from None


def check_last_batches(section, batch_size, counts, replicas):
    """Refuse a split whose last batch has fewer photos than there are replicas: a replica
    would get an empty batch, which oneDNN's convolutions on CPU cannot run."""
    for split, count in counts.items():
        last = count % batch_size
        if 0 < last < replicas:
            raise PipelineError(
                f"params.yaml: {section}.batch_size = {batch_size} leaves the {split} split's last batch "
                f"{last} of {count} photos, fewer than the {replicas} replicas of multi_worker: pick a "
                f"batch size that divides {count} or leaves at least {replicas}"
            )


# Input files up to this size are compared by content; larger ones (image shards) by size,
# which `dvc pull` makes equal, so that the check stays cheap for a million photos.
CONTENT_CHECKED_BYTES = 2**24


def files_summary(paths):
    """(path, size, sha256 or None) of every file under paths, for check_agreement."""
    files = []
    for path in map(Path, paths):
        for file in sorted([path] if path.is_file() else path.rglob("*")):
            if file.is_file():
                size = file.stat().st_size
                files.append((str(file), size, file_sha256(file) if size <= CONTENT_CHECKED_BYTES else None))
    return files


def fingerprint(*parts):
    """A number that is the same on two workers only if they have the same parts."""
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).digest()
    return int.from_bytes(digest[:6], "big")  # exact in a float64


def check_agreement(strategy, what, *parts):
    """Refuse to train unless every worker computes the same `what` from the same parts
    (stage, params, inputs, versions): otherwise they would run different collectives."""
    import numpy as np
    import tensorflow as tf

    if not in_multi_worker_mode(strategy):
        return
    mine = float(fingerprint(what, *parts))

    @tf.function
    def everyones():
        return strategy.gather(strategy.run(lambda: tf.constant([mine], tf.float64)), axis=0)

    if not np.all(np.asarray(everyones()) == mine):
        raise PipelineError(
            f"the cluster's workers disagree on {what}: every machine needs the same commit, params.yaml, "
            "`dvc pull`ed data and requirements, and to run the same stage"
        )
