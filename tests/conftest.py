import ast
import io
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

import transfer  # noqa: F401  (sets TensorFlow's environment before TensorFlow loads)
from transfer.core.task import Task
from transfer.models.backbones import BACKBONES, DEFAULT
from transfer.reporting.metrics import classification_metrics

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TRANSFER_SHARED", PROJECT_ROOT.parent / "shared"))
SHARED_WEIGHTS = SHARED / "weights" / "mobilenet_v2_1.0_224_imagenet_no_top.h5"
SHARED_PHOTOS = SHARED / "data" / "cats_and_dogs_filtered"

# The default backbone's (MobileNetV2's) pooled feature width.
FEATURE_SIZE = BACKBONES[DEFAULT].feature_width

# Features of the frozen base, LiteRT against TensorFlow: the same float32 network,
# summed in another order (XNNPACK's kernels). Measured here: about 1e-5.
FEATURE_TOLERANCE = 1e-3
# Probabilities from LiteRT's conversion of a .keras file against Keras's: the same
# float32 network, summed in another order.
LITERT_TOLERANCE = 1e-3

# A long step's one line when stderr is not a terminal (transfer.core.progress).
SUMMARY = re.compile(r"^(?P<step>.+): (?P<count>\d+) (?P<unit>\w+) in \d+\.\d s \([\d.e+-]+ (?P=unit)/s\)$")

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


def names_in_every_split(class_name, count, fractions, seed):
    """count file names for a class folder whose first three fall in train, validation and test."""
    from transfer.data.sources.folder import split_key, split_of

    names = [f"{index:03d}.jpg" for index in range(1000)]
    first = {}
    for name in names:
        first.setdefault(split_of(split_key(f"{class_name}/{name}", seed), fractions), name)
    chosen = list(first.values())
    return chosen + [name for name in names if name not in chosen][: count - len(chosen)]


def high_bit_depth_twins():
    """{name: (16-bit file bytes, 8-bit twin's bytes)}: a generated photo-like image stored with
    16 bits per channel (random low bytes) and with their high bytes alone, in 8 bits."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    ramp = np.add.outer(np.arange(48) * 4, np.arange(64) * 3) % 256
    rgb8 = np.stack([ramp, 255 - ramp, (ramp * 7) % 256], -1).astype(np.uint8)
    gray8 = rgb8[..., 0]

    def widened(pixels):
        return pixels.astype(np.uint16) * 256 + rng.integers(0, 256, pixels.shape, dtype=np.uint16)

    def encoded(image, fmt):
        buffer = io.BytesIO()
        image.save(buffer, format=fmt)
        return buffer.getvalue()

    gray16 = Image.fromarray(widened(gray8))  # Pillow's mode I;16
    assert gray16.mode == "I;16"
    return {
        "gray16_png": (encoded(gray16, "PNG"), encoded(Image.fromarray(gray8), "PNG")),
        "gray16_tiff": (encoded(gray16, "TIFF"), encoded(Image.fromarray(gray8), "PNG")),
        "rgb16_png": (tf.io.encode_png(widened(rgb8)).numpy(), encoded(Image.fromarray(rgb8), "PNG")),
    }


def make_image_folder(root, per_class=20, classes=("cats", "dogs")):
    """A folder source: reddish 'cats' and bluish 'dogs', easy to tell apart."""
    colors = [(200, 60, 60), (60, 60, 200), (60, 200, 60)]
    for class_index, name in enumerate(classes):
        for index in range(per_class):
            make_image(root / name / f"{index:03d}.jpg", colors[class_index], noise_seed=index)
    return root


@pytest.fixture(scope="session", autouse=True)
def user_cache(tmp_path_factory):
    """The LiteRT conversion cache ($XDG_CACHE_HOME/transfer/litert) in this test run's own
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


# End-to-end runs: the project copied into a new git repository, run by the real DVC.
STAGES = [
    "prepare",
    "extract",
    "audit",
    "train_head",
    "finetune",
    "calibrate",
    "select",
    "evaluate",
    "export",
]
# The stages that run on every repro (always_changed): cheap checks whose files the others read.
ALWAYS_RUN = ("runtime", "pool")
GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]


def run(command, cwd, check=True, env=None):
    """Run a command; env: variables to set on top of this process's environment."""
    environment = None if env is None else {**os.environ, **env}
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=900, env=environment)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def stages_run(output):
    """The stages a repro ran, in order, bar those that run on every repro (always_changed;
    test_a_machine_that_resolves_differently_reruns_what_it_computes)."""
    return [stage for stage in re.findall(r"Running stage '(\w+)'", output) if stage not in ALWAYS_RUN]


def set_params(repo, **changes):
    path = repo / "params.yaml"
    write_params(path, yaml.safe_load(path.read_text()), **changes)


def copy_project(repo):
    """The project's tracked and new files, without tests, in a new git repository."""
    files = run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"], PROJECT_ROOT
    ).stdout.split()
    for name in files:
        if name.startswith(("tests/", "benchmarks/")) or not (PROJECT_ROOT / name).is_file():
            continue
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(PROJECT_ROOT / name, repo / name)
    run(["git", "init", "-q"], repo)
    return repo


def commit(repo, message):
    run(["git", "add", "-A"], repo)
    run([*GIT, "commit", "-qm", message], repo)


def new_project(root, photos, first_run=None, **params):
    """The project in root/repo, a new git repository on the folder source `photos` (outside
    it, as ../shared is for a user), with params changed and committed. first_run: True runs
    `dvc repro`, a list of stages runs those; the run is committed too.
    Returns (repo, the run's result or None)."""
    repo = copy_project(root / "repo")
    set_params(repo, data__source="folder", data__path=str(photos), **params)
    commit(repo, "project")
    if not first_run:
        return repo, None
    result = run(["dvc", "repro", *([] if first_run is True else first_run)], repo)
    commit(repo, "first run")
    return repo, result


def reset(repo):
    """Put the repository back to its last commit: params, lock, metrics and DVC outputs."""
    run(["git", "checkout", "--", "."], repo)
    run(["dvc", "checkout", "--force"], repo)


def plot_values(plots, name):
    """The data points of one DVC plot, from `dvc plots show/diff --json`."""
    return [point for entry in plots["data"][name] for point in entry["content"]["data"]["values"]]


def exp_show_while_running(repo):
    """`dvc exp show --json`, parsed, while experiments run; None when DVC failed because a run
    was starting or ending ("unknown Git revision 'refs/exps/exec/EXEC_BASELINE'": its own refs
    are missing for a moment): a user would look again, and so does the caller."""
    looked = run(["dvc", "exp", "show", "--json"], repo, check=False)
    return json.loads(looked.stdout) if looked.returncode == 0 else None


def experiment_rows(shown):
    """Every row of `dvc exp show --json`: (its experiment's executor or None, the row)."""
    for baseline in shown:
        yield None, baseline
        for experiment in baseline.get("experiments") or []:
            for revision in experiment["revs"]:
                yield experiment.get("executor"), revision


def row_metrics(row):
    """{metrics file: {"data": ...} or {"error": ...}} of one row; queued rows have none."""
    return (row.get("data") or {}).get("metrics") or {}


def jpeg_with_orientation(pixels, orientation, byte_order="II"):
    """A JPEG of pixels with an EXIF APP1 segment holding one tag, Orientation, written by
    hand (Intel "II" or Motorola "MM" byte order) after the JFIF header, as cameras do."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=95)
    jpeg = buffer.getvalue()
    order = "<" if byte_order == "II" else ">"
    tiff = (
        byte_order.encode()
        + struct.pack(f"{order}HI", 42, 8)  # TIFF magic, IFD0 right after the header
        + struct.pack(f"{order}H", 1)  # one entry
        + struct.pack(f"{order}HHIHH", 0x0112, 3, 1, orientation, 0)  # Orientation, SHORT, 1 value
        + struct.pack(f"{order}I", 0)  # no next IFD
    )
    app1 = b"Exif\x00\x00" + tiff
    segment = b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1
    app0_end = 4 + struct.unpack(">H", jpeg[4:6])[0]
    return jpeg[:app0_end] + segment + jpeg[app0_end:]


PACKAGE = "transfer"


def imported_modules(path):
    """transfer modules imported anywhere in a file, function-level imports included."""
    found = set()
    for node in ast.walk(ast.parse(Path(path).read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {name for name in names if name.split(".")[0] == PACKAGE}
    return found


# Loopback clusters: worker processes that talk over 127.0.0.1 only, one TF_CONFIG each.
LOOPBACK = "127.0.0.1"


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind((LOOPBACK, 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def cluster_env(ports, index):
    """This process's environment with TF_CONFIG for worker `index` of a cluster on ports."""
    workers = [f"{LOOPBACK}:{port}" for port in ports]
    tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
    # Unbuffered, so that a log shows how far training got.
    return {**os.environ, "TF_CONFIG": json.dumps(tf_config), "PYTHONUNBUFFERED": "1"}


def run_workers(script, args_per_worker, timeout=300, env=None):
    """Run script as each worker of a loopback cluster; returns (process, stdout, stderr) of each."""
    ports = free_ports(len(args_per_worker))
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script, *args],
            cwd=PROJECT_ROOT,
            env={**cluster_env(ports, index), **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for index, args in enumerate(args_per_worker)
    ]
    return [(process, *process.communicate(timeout=timeout)) for process in processes]


def transfer_predict(*args, env=None):
    """`transfer predict ARGS` in a fresh process from the project root: (result, its JSON lines).
    env: variables to set on top of this process's environment."""
    result = subprocess.run(
        [sys.executable, "-m", "transfer", "predict", *map(str, args)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )
    return result, [json.loads(line) for line in result.stdout.splitlines()]


# Predict in a fresh process, then say which of these heavy modules it imported.
PREDICT_AND_LIST_IMPORTS = (
    "import json, sys\n"
    "from transfer.__main__ import main\n"
    "status = main(['predict', *sys.argv[1:]])\n"
    "heavy = sorted(name for name in ('tensorflow', 'keras') if name in sys.modules)\n"
    "print(json.dumps({'status': status, 'imported': heavy}))\n"
)


def predict_listing_imports(*args):
    """`transfer predict ARGS` in a fresh process: (exit status, the heavy modules it imported,
    its JSON lines)."""
    result = subprocess.run(
        [sys.executable, "-c", PREDICT_AND_LIST_IMPORTS, *map(str, args)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    *lines, summary = result.stdout.splitlines()
    summary = json.loads(summary)
    return summary["status"], summary["imported"], [json.loads(line) for line in lines]


# A TF Serving client: the SavedModel's signature on the files' bytes, TensorFlow alone.
SERVING_CLIENT = (
    "import json, sys, tensorflow as tf\n"
    "serve = tf.saved_model.load(sys.argv[1]).signatures['serving_default']\n"
    "out = serve(image_bytes=tf.constant([open(path, 'rb').read() for path in sys.argv[2:]]))\n"
    "print(json.dumps({name: [value.decode() for value in values.numpy()] if name == 'label'"
    " else values.numpy().tolist() for name, values in out.items()}))\n"
    "assert 'transfer' not in sys.modules\n"
)


def served_outputs(saved_model, files, cwd):
    """{output name: list} the SavedModel serves for the files (labels decoded), in a process
    that never imports the project's package."""
    result = run([sys.executable, "-c", SERVING_CLIENT, str(saved_model), *map(str, files)], cwd)
    return json.loads(result.stdout.strip().splitlines()[-1])


# Apps' runtimes on an export, in a process that never imports the project's package, given
# the photos as `transfer predict` decodes them (a .npy of uint8 images at the model's size):
# MediaPipe Tasks' ImageClassifier on a .tflite file, reading its heads by name, and an ONNX
# Runtime session on the .onnx file, reading its class names from its metadata. Each prints
# one {label, probabilities: {class: p}, known} per photo.
MEDIAPIPE_CLIENT = (
    "import json, sys, numpy as np, mediapipe as mp\n"
    "from mediapipe.tasks.python import vision\n"
    "from mediapipe.tasks.python.core.base_options import BaseOptions\n"
    "options = vision.ImageClassifierOptions(\n"
    "    base_options=BaseOptions(model_asset_path=sys.argv[1]), max_results=-1)\n"
    "rows = []\n"
    "with vision.ImageClassifier.create_from_options(options) as classifier:\n"
    "    for pixels in np.load(sys.argv[2]):\n"
    "        photo = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(pixels))\n"
    "        result = classifier.classify(photo)\n"
    "        heads = {head.head_name: head.categories for head in result.classifications}\n"
    "        ranked = heads['probabilities']\n"
    "        rows.append({'label': ranked[0].category_name, 'known': heads['known'][0].score == 1.0,\n"
    "                     'probabilities': {c.category_name: c.score for c in ranked}})\n"
    "print(json.dumps(rows))\n"
    "assert 'transfer' not in sys.modules\n"
)
ONNX_CLIENT = (
    "import json, sys, numpy as np, onnxruntime as ort\n"
    "session = ort.InferenceSession(sys.argv[1], providers=['CPUExecutionProvider'])\n"
    "names = json.loads(session.get_modelmeta().custom_metadata_map['class_names'])['class_names']\n"
    "images = np.load(sys.argv[2]).astype(np.float32)\n"
    "probabilities, known = session.run(['probabilities', 'known'], {'image': images})\n"
    "print(json.dumps([{'label': names[int(np.argmax(row))], 'known': bool(flag[0] == 1.0),\n"
    "                   'probabilities': dict(zip(names, row.tolist()))}\n"
    "                  for row, flag in zip(probabilities, known)]))\n"
    "assert 'transfer' not in sys.modules\n"
)


def app_outputs(client, model, files, cwd):
    """What an app's runtime (MEDIAPIPE_CLIENT, ONNX_CLIENT) gives for the files."""
    from transfer.data.images import load_image
    from transfer.inference.bundle import open_bundle
    from transfer.inference.runners import bundle_runner

    size = bundle_runner(open_bundle(model)).image_size
    images = Path(cwd) / "app_images.npy"
    np.save(images, np.stack([load_image(path, size) for path in files]))
    result = run([sys.executable, "-c", client, str(model), str(images)], cwd)
    return json.loads(result.stdout.strip().splitlines()[-1])


def as_app_lines(predict_lines):
    """`transfer predict --top K`'s lines in app_outputs's form."""
    return [{**line, "probabilities": dict(line["top"])} for line in predict_lines]


def assert_same_predictions(lines, reference, threshold, tolerance, same_file=True):
    """An app's results (app_outputs's form) against `transfer predict --top K`'s lines: every
    class's probability within tolerance; the same known flag wherever the novelty score is
    clear of the threshold by the tolerance; the same label on every photo when both ran the
    same file (same_file), else wherever the top two classes are not within the tolerance."""
    assert len(lines) == len(reference)
    for line, expected in zip(lines, reference):
        first, second = (probability for _, probability in expected["top"][:2])
        if same_file or first - second > 2 * tolerance:
            assert line["label"] == expected["label"], (line, expected)
        for name, probability in expected["top"]:
            assert line["probabilities"][name] == pytest.approx(probability, abs=tolerance)
        if abs(expected["novelty"] - threshold) > tolerance:
            assert line["known"] == expected["known"], (line, expected)


def assert_apps_run_the_exports_as_predict_does(repo, files, threshold, tmp_path):
    """MediaPipe Tasks' ImageClassifier on both TFLite files, as an app runs them: what
    `transfer predict` gives on the same file. An ONNX Runtime session on model.onnx, and
    `transfer predict model.onnx`: what predict gives on the .keras model. Shared with the
    five-class run."""
    from transfer.core.records import read_record
    from transfer.inference.bundle import open_bundle

    export = read_record("export", repo)
    top = ["--top", str(len(open_bundle(repo / "models" / "model.keras").class_names))]
    for name in ("float32", "int8"):
        model = repo / "export" / f"model_{name}.tflite"
        _, ours = transfer_predict(model, *files, *top)
        mediapipe = app_outputs(MEDIAPIPE_CLIENT, model, files, tmp_path)
        assert_same_predictions(mediapipe, ours, threshold, LITERT_TOLERANCE)
        measured = export["mediapipe"][f"tflite_{name}"]  # the same, on the test split
        assert measured["top_class_agreement"] == 1.0 and measured["known_agreement"] >= 0.99
        assert measured["largest_probability_difference"] <= LITERT_TOLERANCE
    _, keras_lines = transfer_predict(repo / "models" / "model.keras", *files, "--runtime", "keras", *top)
    onnx = repo / "export" / "model.onnx"
    session = app_outputs(ONNX_CLIENT, onnx, files, tmp_path)
    assert_same_predictions(session, keras_lines, threshold, LITERT_TOLERANCE, same_file=False)
    _, onnx_lines = transfer_predict(onnx, *files, *top)  # predict's ONNX Runtime runner
    onnx_lines = as_app_lines(onnx_lines)
    assert_same_predictions(onnx_lines, keras_lines, threshold, LITERT_TOLERANCE, same_file=False)
    assert export["parity_with_keras"]["onnx"]["largest_probability_difference"] <= LITERT_TOLERANCE
    assert export["onnx"]["size_bytes"] == onnx.stat().st_size
