"""How a stage uses the machine (params.yaml `runtime`): threads, mixed precision,
and the tf.distribute strategy that models are built and trained under.

`auto` means different things on different machines, so what it resolves to is
part of DVC's cache key: the runtime stage writes `resolve()` to
metrics/runtime.json, a dependency of every stage that computes with
TensorFlow, and each of them checks on start that this machine resolves the
same (`start(..., recorded=RESOLVED_FILE)`). A CPU float32 result is never
served from the run cache or a shared remote to a GPU float16 run, or back.

The defaults (strategy auto, mixed_precision auto, threads 0) change nothing on
a CPU-only machine: the default strategy, float32, TensorFlow's own thread
pools; every figure stays as it was. `start` must run before any other
TensorFlow work in the process: thread pools and MultiWorkerMirroredStrategy
can only be set up before TensorFlow initialises its runtime.
"""

import json
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import transfer.distribute.multi_worker as multi_worker
from transfer.core.errors import PipelineError
from transfer.distribute.resolve import cluster_workers, mirrored_devices, resolve, resolved_strategy

# Written by the runtime stage (stages/runtime.py); read by every stage that computes.
RESOLVED_FILE = "metrics/runtime.json"

KERAS_POLICIES = {"off": "float32", "float16": "mixed_float16", "bfloat16": "mixed_bfloat16"}


@dataclass
class Runtime:
    strategy: object  # a tf.distribute.Strategy
    precision: str  # off, float16 or bfloat16, as resolved from auto
    is_chief: bool  # only the chief writes outputs
    resolved: dict  # resolve()'s values, recorded in the training stages' metrics

    @contextmanager
    def scope(self):
        """Build, compile and train models inside this (a no-op for the default strategy);
        under multi_worker, a worker that dies or leaves ends it in one PipelineError."""
        with multi_worker.cluster_failures(self.strategy), self.strategy.scope():
            yield

    def agree(self, what, params=None, inputs=()):
        """Under multi_worker, refuse to go on unless every worker has the same params,
        input files (paths, sizes, contents) and runtime; elsewhere nothing."""
        if not multi_worker.in_multi_worker_mode(self.strategy):
            return
        with multi_worker.cluster_failures(self.strategy):
            summary = multi_worker.files_summary(inputs)
            multi_worker.check_agreement(self.strategy, what, self.resolved, params, summary)

    def check_batches(self, section, batch_size, counts):
        """Under multi_worker, refuse splits ({split: photos}) that would leave a replica an
        empty last batch (multi_worker.check_last_batches)."""
        if multi_worker.in_multi_worker_mode(self.strategy):
            multi_worker.check_last_batches(section, batch_size, counts, self.replicas)

    def done(self):
        """Under multi_worker, wait until every worker gets here: the chief once it has
        written the outputs, so a worker that exits 0 means the stage's outputs exist."""
        self.agree("the end of the stage")

    @property
    def replicas(self):
        return self.strategy.num_replicas_in_sync


def check_recorded(resolved, path=RESOLVED_FILE):
    """Refuse to compute when the recorded resolution (what DVC hashed) is not this machine's."""
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"{path} not found: run `dvc repro` (its runtime stage writes it)")
    recorded = json.loads(path.read_text())
    if recorded != resolved:
        changed = ", ".join(
            f"{key} {recorded.get(key)!r} -> {resolved.get(key)!r}"
            for key in sorted(set(recorded) | set(resolved))
            if recorded.get(key) != resolved.get(key)
        )
        raise PipelineError(
            f"{path} was resolved for another machine or params ({changed}): run `dvc repro`, "
            "whose runtime stage resolves it again"
        )


def make_strategy(name, training=True):
    """The tf.distribute strategy for a strategy name.

    auto: MirroredStrategy over the GPUs when there are two or more, else the
    default strategy. multi_worker: MultiWorkerMirroredStrategy with the cluster
    from TF_CONFIG, for the training stages; inference stages (training=False)
    run on the chief alone, as with auto.
    """
    import tensorflow as tf

    if name == "multi_worker" and not training:
        name = "auto"
    name = resolved_strategy(name)
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(devices=mirrored_devices())
    if cluster_workers() > 1:
        multi_worker.patch_keras()
    return multi_worker.multi_worker_strategy()


def is_chief(strategy):
    """Whether this process writes the outputs: always, but under multi_worker only the chief."""
    import tensorflow as tf

    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    return is_chief_task(json.loads(os.environ.get("TF_CONFIG", "{}")))


def is_chief_task(tf_config):
    """TF_CONFIG's task is the chief: of type chief, or worker 0 when the cluster has no chief
    (TensorFlow's own convention)."""
    task = tf_config.get("task", {})
    if "chief" in tf_config.get("cluster", {}):
        return task.get("type") == "chief"
    return task.get("type", "worker") == "worker" and task.get("index", 0) == 0


def start(runtime_params, training=True, recorded=None):
    """Set up this process from the runtime section; returns its Runtime.

    recorded: the runtime stage's file (RESOLVED_FILE), which a stage checks this
    machine against before any work; None to skip the check (tests, benchmarks)."""
    import keras
    import tensorflow as tf

    threads = runtime_params["threads"]
    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    # The strategy first: MultiWorkerMirroredStrategy must exist before TensorFlow's runtime
    # starts, which resolve()'s device listing would do.
    strategy = make_strategy(runtime_params["strategy"], training)
    resolved = resolve(runtime_params)
    chief = is_chief(strategy)
    # A worker writes nothing and is checked against the chief instead (Runtime.agree).
    if recorded is not None and chief:
        check_recorded(resolved, recorded)
    precision = resolved["precision"]
    if precision != "off":  # float32 is Keras's default: leave it untouched
        keras.mixed_precision.set_global_policy(KERAS_POLICIES[precision])
    return Runtime(strategy, precision, chief, resolved)
