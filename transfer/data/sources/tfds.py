"""The tfds source: any TensorFlow Datasets image-classification set, sliced into the
three splits, with a fast failure where its download host cannot be reached."""

import contextlib
import queue
import threading
from urllib.parse import urlsplit

import numpy as np

from transfer.core.errors import PipelineError, one_line
from transfer.core.progress import Progress
from transfer.data.exclusions import Exclusions
from transfer.data.images import eight_bits, resize_image
from transfer.data.shards import SPLITS, PreparedWriter


def tfds_split_names(fractions):
    """tfds slicing of a dataset's 'train' split into train/validation/test."""
    train_end = round(fractions[0] * 100)
    validation_end = round((fractions[0] + fractions[1]) * 100)
    if (
        abs(train_end - fractions[0] * 100) > 1e-6
        or abs(validation_end - (fractions[0] + fractions[1]) * 100) > 1e-6
    ):
        raise PipelineError(
            f"data.split = {list(fractions)} is invalid for the tfds source: must be whole percents"
        )
    return [f"train[:{train_end}%]", f"train[{train_end}%:{validation_end}%]", f"train[{validation_end}%:]"]


def tfds_image_and_label(name, info):
    """The (image, label) feature keys of an image-classification dataset, from its info.

    The dataset's supervised keys when they are an image and a class label,
    else its only image feature and only class-label feature.
    """
    import tensorflow_datasets as tfds

    features = info.features
    images = [key for key, feature in features.items() if isinstance(feature, tfds.features.Image)]
    labels = [key for key, feature in features.items() if isinstance(feature, tfds.features.ClassLabel)]
    supervised = info.supervised_keys
    if (
        isinstance(supervised, tuple)
        and len(supervised) == 2
        and supervised[0] in images
        and supervised[1] in labels
    ):
        return supervised
    if len(images) == 1 and len(labels) == 1:
        return images[0], labels[0]
    kinds = ", ".join(f"{key}: {type(feature).__name__}" for key, feature in features.items())
    raise PipelineError(
        f"tfds dataset '{name}' is not image classification: it needs one Image and one ClassLabel "
        f"feature, it has {kinds}"
    )


def prepare_tfds(out_dir, image_size, fractions, name="cats_vs_dogs", data_dir=None, exclusions=None):
    """Download (or reuse) a TensorFlow Datasets image-classification set and write it as shards.

    The image and label features are found from the dataset's info before
    anything is downloaded; `data.split` slices the dataset's 'train' split.
    data_dir: tfds's data dir (None: its default, $TFDS_DATA_DIR or ~/tensorflow_datasets).
    """
    import tensorflow_datasets as tfds

    split_names = tfds_split_names(fractions)
    try:
        builder = tfds.builder(name, data_dir=data_dir)
        info = builder.info
    except Exception as error:  # tfds raises many types; all mean "no such dataset"
        raise PipelineError(f"could not load tfds dataset '{name}': {one_line(error)}") from None
    image_key, label_key = tfds_image_and_label(name, info)
    try:
        with downloads_failing_fast(name):
            datasets = tfds.load(name, split=split_names, data_dir=data_dir)
    except PipelineError:
        raise
    except Exception as error:  # download and preparation failures come as many types
        raise PipelineError(f"could not load tfds dataset '{name}': {one_line(error)}") from None
    class_names = info.features[label_key].names
    writer = PreparedWriter(out_dir, image_size, class_names, source=f"tfds:{name}")
    exclusions = exclusions or Exclusions()
    exclusions.bind(class_names)
    # tfds knows each split's size; an unknown one (-2) leaves the bar without a total.
    sizes = [int(dataset.cardinality()) for dataset in datasets]
    total = sum(sizes) if min(sizes) >= 0 else None
    with Progress(f"prepare: reading tfds {name}", total) as progress:
        for split, split_name, dataset in zip(SPLITS, split_names, datasets):
            for index, example in enumerate(tfds.as_numpy(dataset)):
                progress.update(1)
                image = eight_bits(example[image_key])  # a dataset of 16-bit images: scaled
                if image.shape[-1] == 1:
                    image = np.repeat(image, 3, axis=-1)
                image = np.ascontiguousarray(image[..., :3])  # RGBA: alpha dropped, as for files
                example_id, label = f"{split_name}#{index}", int(example[label_key])
                label = exclusions.apply(example_id, label)
                if label is not None:
                    writer.add(split, resize_image(image, image_size), label, example_id)
    # tfds itself drops the 1,738 corrupt cats_vs_dogs images while building.
    return writer.close(), []


DOWNLOAD_PROBE_SECONDS = 10


@contextlib.contextmanager
def downloads_failing_fast(name):
    """tfds downloads that fail in seconds, not minutes, where their host cannot be reached.

    Wraps the one method every tfds download goes through (DownloadManager._download
    in tensorflow-datasets 4.9; tests/test_tfds_source.py checks it offline), so a
    dataset that is already prepared, or tfds.testing.mock_data, never probes.
    """
    from tensorflow_datasets.core.download.download_manager import DownloadManager

    original = DownloadManager._download
    checked = set()

    def download(manager, resource):
        host = urlsplit(resource.url).netloc
        if host not in checked:
            check_download_reachable(name, resource.url)
            checked.add(host)
        return original(manager, resource)

    DownloadManager._download = download
    try:
        yield
    finally:
        DownloadManager._download = original


def check_download_reachable(name, url):
    """Raise PipelineError unless url's host answers within DOWNLOAD_PROBE_SECONDS.

    Offline, tfds's downloader retries for minutes before it gives up. One HEAD
    request, through the environment's proxies as tfds's own requests go, in a
    daemon thread: a DNS lookup that hangs cannot hold the stage (or its exit).
    """
    import requests

    answers = queue.Queue()

    def probe():
        try:
            requests.head(url, timeout=DOWNLOAD_PROBE_SECONDS, allow_redirects=False)
            answers.put(True)
        except requests.RequestException:
            answers.put(False)

    threading.Thread(target=probe, daemon=True).start()
    try:
        if answers.get(timeout=DOWNLOAD_PROBE_SECONDS):
            return
    except queue.Empty:
        pass
    raise PipelineError(
        f"could not download tfds dataset '{name}': {urlsplit(url).netloc} cannot be reached "
        "(no network?). Use your own photos (data.source: folder, data.path: a folder with "
        f"one sub-folder per class) or set data.tfds_dir to a TFDS data dir that holds '{name}' "
        f"already (`tfds build {name} --data_dir DIR` on a machine with internet access)"
    )


def data_dir(data):
    """data.tfds_dir as tfds takes it: None for `default` ($TFDS_DATA_DIR or ~/tensorflow_datasets)."""
    return None if data["tfds_dir"] == "default" else data["tfds_dir"]


def prepare(data, out_dir, exclusions):
    """The tfds source's row of transfer.data.sources: data.tfds_name from data.tfds_dir."""
    return prepare_tfds(
        out_dir, data["image_size"], data["split"], data["tfds_name"], data_dir(data), exclusions
    )


def originals(data, ids):
    return tfds_encoded(data["tfds_name"], data_dir(data), ids)


def tfds_encoded(name, data_dir, ids):
    """The stored bytes of tfds examples named `<split slice>#<index>`, as prepare names them."""
    import tensorflow_datasets as tfds

    image_key, _ = tfds_image_and_label(name, tfds.builder(name, data_dir=data_dir).info)
    wanted = iter(ids)
    image_id = next(wanted, None)
    while image_id is not None:
        split_name = image_id.rsplit("#", 1)[0]
        dataset = tfds.load(
            name, split=split_name, data_dir=data_dir, decoders={image_key: tfds.decode.SkipDecoding()}
        )
        for index, example in enumerate(tfds.as_numpy(dataset)):
            if image_id != f"{split_name}#{index}":
                break
            yield example[image_key]
            image_id = next(wanted, None)
        if image_id is not None and image_id.rsplit("#", 1)[0] == split_name:
            raise PipelineError(f"tfds dataset '{name}' has no example {image_id} (run dvc repro)")
