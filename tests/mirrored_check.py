"""Train the head and fine-tune the classifier on one device, then mirrored over
two logical CPU devices (tests/test_runtime.py runs this in a fresh process:
logical devices can only be set up before TensorFlow starts).

    python -m tests.mirrored_check WORK_DIR WEIGHTS   -> WORK_DIR/{default,mirrored}.npz
                                                        and WORK_DIR/{default,mirrored}/dvclive

The data stay in a fixed order (shuffle_buffer 1): under a multi-replica
strategy Keras draws one batch from a fresh iterator before training (its
symbolic build), which moves a reshuffling dataset on by one epoch, so a
shuffled mirrored run sees the same batches in another epoch order.
"""

import sys
from pathlib import Path

import numpy as np

from tests.conftest import BINARY, FEATURE_SIZE, default_params, make_image_folder
from transfer.data.sources.folder import prepare_folder


def main(work, weights):
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

    from transfer.distribute.runtime import make_strategy
    from transfer.models.networks import build_base, build_classifier, build_head, unfreeze_top
    from transfer.training.datasets import feature_dataset
    from transfer.training.epoch_log import EpochLog
    from transfer.training.fine_tuning import fine_tune
    from transfer.training.recipe import compile_for_phase, fit, seed_everything

    prepared = work / "prepared"
    # 28 training and 6 validation images: with batches of 8, no replica is ever handed an
    # empty slice of a last batch (oneDNN's fused convolution mis-shapes empty batches on CPU).
    prepare_folder(make_image_folder(work / "images", per_class=20), prepared, 32, [0.6, 0.2, 0.2], seed=0)
    rng = np.random.default_rng(0)
    labels = (np.arange(64) % 2).astype(np.float32)
    features = rng.normal(size=(64, FEATURE_SIZE)).astype(np.float32)
    features[:, :10] += (labels[:, None] * 2 - 1) * 2.0
    head_params = {**default_params()["train_head"], "epochs": 2, "learning_rate": 0.001, "batch_size": 16}
    finetune_params = {
        **default_params()["finetune"],
        "epochs": 2,
        "batch_size": 8,
        "shuffle_buffer": 1,
        "fine_tune_at": 120,
        "learning_rate": 0.0001,
    }

    for name in ("default", "mirrored"):
        seed_everything(0)
        strategy = make_strategy(name)
        with strategy.scope():
            head = build_head()
            train = feature_dataset(features, labels, 16, shuffle_buffer=1, seed=0)
            compile_for_phase(head, BINARY, head_params, len(train))
            log = EpochLog("train_head", root=work / name)
            fit(head, train, feature_dataset(features, labels, 16), 0, head_params["epochs"], log=log)
            log.end()
            trained = {f"head_{i}": w for i, w in enumerate(head.get_weights())}
            base = build_base(32, weights)
            unfreeze_top(base, finetune_params["fine_tune_at"])
            model = build_classifier(base, head)
            fine_tune(
                model,
                base,
                BINARY,
                prepared,
                finetune_params,
                seed=0,
                first_epoch=2,
                cache_bottom=True,
                inference_batch_size=16,
                log=(log := EpochLog("finetune", root=work / name)),
            )
            log.end()
        trained |= {f"model_{i}": w for i, w in enumerate(model.get_weights())}
        np.savez(work / f"{name}.npz", replicas=strategy.num_replicas_in_sync, **trained)


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
