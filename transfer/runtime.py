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

import glob
import importlib
import importlib.metadata
import json
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import transfer.multi_worker as multi_worker
from transfer.errors import PipelineError

# Written by the runtime stage (stages/runtime.py); read by every stage that computes.
RESOLVED_FILE = "metrics/runtime.json"

KERAS_POLICIES = {"off": "float32", "float16": "mixed_float16", "bfloat16": "mixed_bfloat16"}
# float16 pays off from Volta (compute capability 7.0) on: tensor cores.
FLOAT16_MIN_COMPUTE_CAPABILITY = (7, 0)


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


# Device nodes through which TensorFlow reaches a GPU: NVIDIA's driver, ROCm's, WSL's.
GPU_DEVICE_NODES = ("/dev/nvidia[0-9]*", "/dev/kfd", "/dev/dxg")


def gpu_hardware_visible():
    """Whether TensorFlow could find a GPU here, answered without starting it: a GPU driver's
    device node exists and CUDA_VISIBLE_DEVICES does not hide every device. False is certain;
    True means TensorFlow is asked."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    return any(glob.glob(pattern) for pattern in GPU_DEVICE_NODES)


def gpus():
    """TensorFlow's physical GPUs; none, without importing TensorFlow, on a machine with no GPU driver."""
    if not gpu_hardware_visible():
        return []
    import tensorflow as tf

    return tf.config.list_physical_devices("GPU")


def package_version(name):
    """A package's version from its installed metadata (no import), or from the module itself
    when its distribution has another name (tensorflow-cpu, tf-nightly)."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return importlib.import_module(name).__version__


def resolve_precision(name, devices):
    """auto: float16 when every GPU has compute capability >= 7.0, else off (CPUs gain nothing)."""
    if name != "auto":
        return name
    if not devices:
        return "off"
    import tensorflow as tf

    details = [tf.config.experimental.get_device_details(gpu) for gpu in devices]
    capabilities = [detail.get("compute_capability") for detail in details]
    if capabilities and all(c and tuple(c) >= FLOAT16_MIN_COMPUTE_CAPABILITY for c in capabilities):
        return "float16"
    return "off"


def mirrored_devices():
    """All GPUs; without one, every logical CPU device (one, unless the CPU was split
    into logical devices — which is how the tests stand in for two GPUs)."""
    import tensorflow as tf

    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    return [device.name for device in devices]


def resolved_strategy(name):
    """The strategy name `auto` stands for here: mirrored over two GPUs or more, else default."""
    if name == "auto":
        return "mirrored" if len(gpus()) >= 2 else "default"
    return name


def cluster_workers(tf_config=None):
    """How many processes TF_CONFIG's cluster trains with (1 without a cluster)."""
    if tf_config is None:
        tf_config = json.loads(os.environ.get("TF_CONFIG", "{}"))
    cluster = tf_config.get("cluster", {})
    return sum(len(cluster.get(kind, [])) for kind in ("chief", "worker")) or 1


def resolve(runtime_params):
    """What this machine makes of the runtime section, as plain values: the strategy and
    precision `auto` becomes, how many devices and processes train, and the versions and
    settings that change the numbers. Builds nothing: safe before a strategy exists.
    The thread count is left out: runtime.threads is a param of every stage that computes,
    so DVC hashes it already (it does change fine-tuning's figures: docs/scale.md).

    Imports TensorFlow only where it must be asked (a GPU driver present, or the mirrored
    strategy's devices): the runtime stage runs on every `dvc repro`, and on a machine without
    a GPU it answers from the environment and package metadata in a fraction of a second. The
    computing stages call this same function, so both sides always resolve alike."""
    devices = gpus()
    strategy = resolved_strategy(runtime_params["strategy"])
    workers = cluster_workers() if strategy == "multi_worker" else 1
    if strategy == "mirrored":
        replicas = len(mirrored_devices())
    elif strategy == "multi_worker":
        replicas = workers * max(1, len(devices))
    else:
        replicas = 1
    return {
        "strategy": strategy,
        "precision": resolve_precision(runtime_params["mixed_precision"], devices),
        "devices": replicas,
        "workers": workers,
        "gpus": gpu_names(devices),
        "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", ""),
        "tensorflow": package_version("tensorflow"),
        "keras": package_version("keras"),
    }


def gpu_names(devices):
    if not devices:
        return []
    import tensorflow as tf

    return [tf.config.experimental.get_device_details(gpu).get("device_name", "GPU") for gpu in devices]


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
    return multi_worker.make_strategy()


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
