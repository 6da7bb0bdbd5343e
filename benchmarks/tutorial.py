"""The tutorial's way, as one uncached script: the baseline the benchmark compares against.

TensorFlow's "transfer learning with a pretrained ConvNet": images decoded and
resized by tf.data every epoch, the frozen MobileNetV2 inside model.fit, then
(with --finetune-epochs) the top of the base unfrozen at lr / 10. Same photos
and split as the pipeline's folder source (80/10/10 by path hash, seed 42).

    python benchmarks/tutorial.py --photos DIR --weights H5 --image-size 160 \\
        --head-epochs 10 --finetune-epochs 10
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import transfer  # noqa: E402, F401  (oneDNN on, as in the pipeline: the same TensorFlow settings)
from transfer.data.sources.folder import list_folder, split_key, split_of  # noqa: E402


def file_lists(photos, seed=42, fractions=(0.8, 0.1, 0.1)):
    candidates, _ = list_folder(photos)
    class_names = sorted({name for _, name in candidates})
    splits = {"train": [], "validation": [], "test": []}
    for path, class_name in sorted(candidates, key=lambda item: split_key(item[0], seed)):
        splits[split_of(split_key(path, seed), fractions)].append(
            (str(Path(photos) / path), class_names.index(class_name))
        )
    return splits


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--photos", required=True)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--image-size", type=int, default=160)
    parser.add_argument("--head-epochs", type=int, default=10)
    parser.add_argument("--finetune-epochs", type=int, default=0)
    args = parser.parse_args()

    import keras
    import tensorflow as tf

    size = args.image_size

    def dataset(items, shuffle):
        paths, labels = zip(*items)
        data = tf.data.Dataset.from_tensor_slices((list(paths), list(labels)))
        if shuffle:
            data = data.shuffle(1000, seed=42)

        def load(path, label):
            image = tf.io.decode_jpeg(tf.io.read_file(path), channels=3)
            return tf.image.resize(image, (size, size)), tf.cast(label, tf.float32)

        return data.map(load, num_parallel_calls=tf.data.AUTOTUNE).batch(32).prefetch(tf.data.AUTOTUNE)

    splits = file_lists(args.photos)
    train, validation, test = (
        dataset(splits["train"], True),
        dataset(splits["validation"], False),
        dataset(splits["test"], False),
    )

    base = keras.applications.MobileNetV2(
        input_shape=(size, size, 3), include_top=False, weights=args.weights
    )
    base.trainable = False
    inputs = keras.Input((size, size, 3))
    x = keras.applications.mobilenet_v2.preprocess_input(inputs)
    x = base(x, training=False)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(1)(x)
    model = keras.Model(inputs, outputs)
    metrics = [keras.metrics.BinaryAccuracy(threshold=0.0, name="accuracy")]
    loss = keras.losses.BinaryCrossentropy(from_logits=True)
    model.compile(optimizer=keras.optimizers.RMSprop(1e-4), loss=loss, metrics=metrics)
    model.fit(train, epochs=args.head_epochs, validation_data=validation, verbose=2)
    print("head test accuracy", model.evaluate(test, verbose=0)[1])
    if args.finetune_epochs:
        base.trainable = True
        for layer in base.layers[:100]:
            layer.trainable = False
        model.compile(optimizer=keras.optimizers.RMSprop(1e-5), loss=loss, metrics=metrics)
        model.fit(
            train,
            epochs=args.head_epochs + args.finetune_epochs,
            initial_epoch=args.head_epochs,
            validation_data=validation,
            verbose=2,
        )
        print("fine-tuned test accuracy", model.evaluate(test, verbose=0)[1])


if __name__ == "__main__":
    main()
