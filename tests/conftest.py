import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

import transfer  # noqa: F401  (sets TensorFlow's environment before TensorFlow loads)
from transfer.backbones import BACKBONES, DEFAULT
from transfer.metrics import classification_metrics
from transfer.task import Task

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TRANSFER_SHARED", PROJECT_ROOT.parent / "shared"))
SHARED_WEIGHTS = SHARED / "weights" / "mobilenet_v2_1.0_224_imagenet_no_top.h5"
SHARED_PHOTOS = SHARED / "data" / "cats_and_dogs_filtered"

# The default backbone's (MobileNetV2's) pooled feature width.
FEATURE_SIZE = BACKBONES[DEFAULT].feature_width

# The tutorial's task: two classes, one logit.
BINARY = Task(["cat", "dog"])


def binary_metrics(labels, logits):
    return classification_metrics(BINARY, labels, logits)


def pytest_addoption(parser):
    parser.addoption("--slow", action="store_true", help="also run the tests marked slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def make_image(path, color, size=(40, 30), mode="RGB", fmt=None, noise_seed=0):
    """A small image of one dominant colour with some noise, written to path."""
    rng = np.random.default_rng(noise_seed)
    pixels = np.clip(np.array(color) + rng.integers(-30, 30, size=(size[1], size[0], 3)), 0, 255)
    image = Image.fromarray(pixels.astype(np.uint8), "RGB")
    if mode != "RGB":
        image = image.convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format=fmt)
    return path


def make_image_folder(root, per_class=20, classes=("cats", "dogs")):
    """A folder source: reddish 'cats' and bluish 'dogs', easy to tell apart."""
    colors = [(200, 60, 60), (60, 60, 200), (60, 200, 60)]
    for class_index, name in enumerate(classes):
        for index in range(per_class):
            make_image(root / name / f"{index:03d}.jpg", colors[class_index], noise_seed=index)
    return root


@pytest.fixture(scope="session", autouse=True)
def user_cache(tmp_path_factory):
    """The LiteRT conversion cache ($XDG_CACHE_HOME/transfer/litert) in this session's own
    folder, for this process and every command it starts: no test reads a conversion
    another run left, and none writes to the home folder."""
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg_cache"))
    return Path(os.environ["XDG_CACHE_HOME"]) / "transfer" / "litert"


@pytest.fixture
def image_folder(tmp_path):
    return make_image_folder(tmp_path / "images")


def require_shared(path):
    """A shared asset, or a skip on a machine without ../shared; in CI (CI=true) a missing
    asset fails every test that needs it: a green CI means the real pipeline ran."""
    if not path.exists():
        message = f"shared asset not found at {path} (set TRANSFER_SHARED to the shared folder)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def shared_weights():
    return require_shared(SHARED_WEIGHTS)


@pytest.fixture(scope="session")
def shared_photos():
    return require_shared(SHARED_PHOTOS)


def default_params():
    return yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())


def write_params(path, base=None, **changes):
    """Write params.yaml to path: base (default: the project's) with section__key=value changes."""
    params = base if base is not None else default_params()
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        params[section][key] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def copy_shared_subset(destination, per_class):
    """The first per_class training photos of each class from the shared set."""
    for class_name, prefix in (("cats", "cat"), ("dogs", "dog")):
        (destination / class_name).mkdir(parents=True)
        for index in range(per_class):
            name = f"{prefix}.{index}.jpg"
            shutil.copy(SHARED_PHOTOS / "train" / class_name / name, destination / class_name / name)
    return destination
