"""How a stage uses the machine (params.yaml `runtime`): threads, mixed precision,
and the tf.distribute strategy that models are built and trained under.

The defaults (strategy auto, mixed_precision auto, threads 0) change nothing on
a CPU-only machine: the default strategy, float32, TensorFlow's own thread
pools; every figure stays as it was. `start` must run before any other
TensorFlow work in the process: thread pools and MultiWorkerMirroredStrategy
can only be set up before TensorFlow initialises its runtime.
"""

import json
import os
from dataclasses import dataclass

# By the names params.yaml uses (transfer.params checks them).
STRATEGIES = ("auto", "default", "mirrored", "multi_worker")
PRECISIONS = ("auto", "off", "float16", "bfloat16")
KERAS_POLICIES = {"off": "float32", "float16": "mixed_float16", "bfloat16": "mixed_bfloat16"}
# float16 pays off from Volta (compute capability 7.0) on: tensor cores.
FLOAT16_MIN_COMPUTE_CAPABILITY = (7, 0)


@dataclass
class Runtime:
    strategy: object  # a tf.distribute.Strategy
    precision: str  # off, float16 or bfloat16, as resolved from auto
    is_chief: bool  # only the chief writes outputs

    def scope(self):
        """Build and compile models inside this (a no-op for the default strategy)."""
        return self.strategy.scope()

    @property
    def replicas(self):
        return self.strategy.num_replicas_in_sync


def gpus():
    import tensorflow as tf

    return tf.config.list_physical_devices("GPU")


def resolve_precision(name, devices):
    """auto: float16 when every GPU has compute capability >= 7.0, else off (CPUs gain nothing)."""
    if name != "auto":
        return name
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
    if name == "auto":
        name = "mirrored" if len(gpus()) >= 2 else "default"
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(devices=mirrored_devices())
    return tf.distribute.MultiWorkerMirroredStrategy()


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


def start(runtime_params, training=True):
    """Set up this process from the runtime section; returns its Runtime."""
    import keras
    import tensorflow as tf

    threads = runtime_params["threads"]
    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    strategy = make_strategy(runtime_params["strategy"], training)
    precision = resolve_precision(runtime_params["mixed_precision"], gpus())
    if precision != "off":  # float32 is Keras's default: leave it untouched
        keras.mixed_precision.set_global_policy(KERAS_POLICIES[precision])
    return Runtime(strategy, precision, is_chief(strategy))
