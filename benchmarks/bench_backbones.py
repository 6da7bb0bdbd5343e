"""Extract images/s of each registered backbone at 224 px (random weights), and the size of its
classifier as TFLite float32 and int8 files."""

import json
import shutil
import tempfile

from common import median_rate, timed


def bench_backbones(work, photos, repeats, per_class=128, size=224, names=None, batch_size=64):
    """The extract stage's code with every backbone (or those named), on the same 224 px images."""
    from transfer.data.features import extract_all
    from transfer.data.shards import read_shards
    from transfer.data.sources.folder import prepare_folder
    from transfer.inference.runners import KerasRunner
    from transfer.models.backbones import BACKBONES
    from transfer.models.networks import build_base, build_classifier, build_feature_extractor, build_head

    subset = work / "backbone_photos"
    for class_dir in sorted(path for path in (photos / "train").iterdir() if path.is_dir()):
        (subset / class_dir.name).mkdir(parents=True)
        for path in sorted(class_dir.iterdir())[:per_class]:
            shutil.copy(path, subset / class_dir.name / path.name)
    prepared = work / "backbone_prepared"
    prepare_folder(subset, prepared, size, [0.8, 0.1, 0.1], seed=42)
    results = {}
    for name in names or BACKBONES:
        base = build_base(size, "none", name)
        extractor = build_feature_extractor(base)

        def extract(extractor=extractor):
            with tempfile.TemporaryDirectory() as out:
                return sum(extract_all(KerasRunner(extractor), prepared, out, batch_size).values())

        count = extract()  # warm-up: tracing and oneDNN kernel selection
        seconds = [timed(extract) for _ in range(repeats)]
        results[name] = {"images": count, "image_size": size, "images_per_s": median_rate(count, seconds)}
        classifier = build_classifier(base, build_head(5, feature_width=base.backbone.feature_width))
        representative = next(read_shards(prepared, "train"))[0][:16]
        results[name].update(tflite_sizes_mb(classifier, representative))
        print("backbone", name, json.dumps(results[name]), flush=True)
    return results


def tflite_sizes_mb(classifier, representative_images):
    """The classifier as TFLite float32 and int8, in MB: the model's own share of an exported
    file, without the novelty check's bank of training features (feature_width x training
    photos x 4 bytes, the same for every backbone of a width)."""
    from transfer.inference.litert import plain_saved_model, tflite_bytes

    with plain_saved_model(classifier) as saved_model:
        float32 = tflite_bytes(saved_model)
        int8 = tflite_bytes(saved_model, representative_images)
    return {"tflite_float32_mb": len(float32) / 1e6, "tflite_int8_mb": len(int8) / 1e6}
