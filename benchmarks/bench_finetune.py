"""The finetune stage's training loop against a bare model.fit on in-memory tensors."""

import numpy as np
from common import median_rate, timed


def bench_finetune(prepared, weights, size, repeats, fine_tune_at=100, batch_size=32):
    import keras

    from transfer.core.task import Task
    from transfer.data.shards import read_meta, read_shards
    from transfer.models.networks import build_base, build_classifier, build_head, unfreeze_top
    from transfer.training.datasets import image_dataset
    from transfer.training.recipe import compile_model

    task = Task(read_meta(prepared)["class_names"])
    base = build_base(size, weights)
    unfreeze_top(base, fine_tune_at)
    model = build_classifier(base, build_head(task.logit_width))
    compile_model(model, task, 1e-5)
    shards = list(read_shards(prepared, "train"))
    images = np.concatenate([shard[0] for shard in shards])
    labels = np.concatenate([shard[1] for shard in shards]).astype("float32")
    # Whole batches only, so both loops do the same steps.
    count = len(images) // batch_size * batch_size
    images, labels = images[:count], labels[:count]

    def project():
        dataset = image_dataset(prepared, "train", batch_size, shuffle_buffer=1000, seed=0).take(
            count // batch_size
        )
        model.fit(dataset, epochs=1, verbose=0, shuffle=False)

    def bare():
        model.fit(images, labels, batch_size=batch_size, epochs=1, verbose=0, shuffle=True)

    project()
    bare()
    project_times, bare_times = [], []
    for _ in range(repeats):
        project_times.append(timed(project))
        bare_times.append(timed(bare))
    keras.backend.clear_session()
    rates = {"project": median_rate(count, project_times), "ceiling": median_rate(count, bare_times)}
    return {"images": count, "batch_size": batch_size, **rates, "ratio": rates["project"] / rates["ceiling"]}
