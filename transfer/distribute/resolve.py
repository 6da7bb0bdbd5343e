"""What params.yaml's runtime section resolves to on this machine, as plain values (the
runtime stage's metrics/runtime.json): see transfer.distribute.runtime."""

import glob
import importlib
import importlib.metadata
import json
import os

# float16 pays off from Volta (compute capability 7.0) on: tensor cores.
FLOAT16_MIN_COMPUTE_CAPABILITY = (7, 0)

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
