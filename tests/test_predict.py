import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import (
    LITERT_TOLERANCE,
    PROJECT_ROOT,
    make_image,
    predict_listing_imports,
    transfer_predict,
)
from transfer.__main__ import main
from transfer.core.io import file_sha256
from transfer.data.images import find_images, load_image
from transfer.models.networks import build_base, build_classifier, build_head

SIZE = 48


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, shared_weights):
    """A small classifier saved as the pipeline saves it, with classes.json beside it.

    Real base weights and a random head: varied, image-dependent probabilities."""
    import keras

    keras.utils.set_random_seed(0)
    folder = tmp_path_factory.mktemp("model")
    model = build_classifier(build_base(SIZE, str(shared_weights)), build_head())
    model.save(folder / "model.keras")
    (folder / "classes.json").write_text(json.dumps({"class_names": ["cat", "dog"]}))
    return folder


@pytest.fixture
def mixed_folder(tmp_path):
    folder = tmp_path / "photos"
    make_image(folder / "a_good.jpg", (200, 60, 60), size=(120, 90))
    good = make_image(folder / "b_good.jpg", (60, 60, 200), size=(64, 64))
    (folder / "c_truncated.jpg").write_bytes(good.read_bytes()[:200])
    (folder / "d_text.jpg").write_text("this is not an image")
    make_image(folder / "e_alpha.png", (60, 200, 60), size=(50, 70), mode="RGBA")
    make_image(folder / "sub" / "f_gray.png", (100, 100, 100), size=(30, 30), mode="L")
    (folder / "notes.txt").write_text("not picked up: not an image suffix")
    return folder


def test_find_images_searches_folders_recursively_in_order(mixed_folder):
    names = [path.name for path in find_images([mixed_folder])]
    assert names == ["a_good.jpg", "b_good.jpg", "c_truncated.jpg", "d_text.jpg", "e_alpha.png", "f_gray.png"]


def test_predict_prints_a_json_line_per_image_and_reports_bad_files(model_dir, mixed_folder):
    result, lines = transfer_predict(model_dir / "model.keras", mixed_folder, "--batch-size", "4")
    assert result.returncode == 1
    assert [line["path"] for line in lines] == [str(path) for path in find_images([mixed_folder])]
    by_name = {line["path"].rsplit("/", 1)[-1]: line for line in lines}
    import keras

    model = keras.models.load_model(model_dir / "model.keras")
    for name in ("a_good.jpg", "b_good.jpg", "e_alpha.png", "f_gray.png"):
        assert set(by_name[name]) == {"path", "label", "score"}
        logit = model.predict(load_image(by_name[name]["path"], SIZE)[np.newaxis], verbose=0).item()
        probability = 1 / (1 + np.exp(-logit))
        assert by_name[name]["label"] == ("dog" if probability > 0.5 else "cat")
        assert by_name[name]["score"] == pytest.approx(
            max(probability, 1 - probability), abs=LITERT_TOLERANCE
        )
    assert "truncated" in by_name["c_truncated.jpg"]["error"].lower()
    assert "cannot identify image file" in by_name["d_text.jpg"]["error"]


@pytest.mark.parametrize(
    "runtime, tolerance", [("keras", 1e-5), ("litert", LITERT_TOLERANCE), ("auto", 1e-3)]
)
def test_predict_agrees_with_keras_predict_on_the_same_images(
    model_dir, mixed_folder, runtime, tolerance, user_cache
):
    import keras

    files = [mixed_folder / "a_good.jpg", mixed_folder / "b_good.jpg", mixed_folder / "e_alpha.png"]
    result, lines = transfer_predict(model_dir / "model.keras", *files, "--runtime", runtime)
    assert result.returncode == 0
    model = keras.models.load_model(model_dir / "model.keras")
    logits = model.predict(np.stack([load_image(path, SIZE) for path in files]), verbose=0).reshape(-1)
    probabilities = 1 / (1 + np.exp(-logits))
    for line, probability in zip(lines, probabilities):
        assert line["label"] == ("dog" if probability > 0.5 else "cat")
        expected = probability if probability > 0.5 else 1 - probability
        assert line["score"] == pytest.approx(expected, abs=tolerance)
    if runtime != "keras":  # converted once, into the user's cache
        assert (user_cache / f"{file_sha256(model_dir / 'model.keras')}.tflite").is_file()


def test_tta_averages_the_probability_of_each_image_and_its_mirror(model_dir, mixed_folder):
    import keras

    files = [mixed_folder / "a_good.jpg", mixed_folder / "e_alpha.png"]
    result, lines = transfer_predict(model_dir / "model.keras", *files, "--tta", "--runtime", "keras")
    assert result.returncode == 0
    model = keras.models.load_model(model_dir / "model.keras")
    images = np.stack([load_image(path, SIZE) for path in files])
    both = [model.predict(batch, verbose=0).reshape(-1) for batch in (images, images[:, :, ::-1])]
    probabilities = np.mean([1 / (1 + np.exp(-logits)) for logits in both], axis=0)
    _, plain = transfer_predict(model_dir / "model.keras", *files, "--runtime", "keras")
    for line, plain_line, probability in zip(lines, plain, probabilities):
        expected = probability if line["label"] == "dog" else 1 - probability
        assert line["score"] == pytest.approx(expected, abs=1e-5)
        assert line["score"] != plain_line["score"]


def test_threshold_moves_the_decision(model_dir, mixed_folder):
    image = mixed_folder / "a_good.jpg"
    _, low = transfer_predict(model_dir / "model.keras", image, "--threshold", "0.001")
    _, high = transfer_predict(model_dir / "model.keras", image, "--threshold", "0.999")
    assert (low[0]["label"], high[0]["label"]) == ("dog", "cat")


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["missing.keras", "."], "error: model not found: missing.keras"),
        (["MODEL", "no/such/photo.jpg"], "error: no such file or folder: no/such/photo.jpg"),
        (["MODEL", ".", "--batch-size", "0"], "error: --batch-size must be a positive integer, got 0"),
    ],
)
def test_missing_model_or_path_is_one_line_and_exit_2(model_dir, arguments, message):
    arguments = [str(model_dir / "model.keras") if arg == "MODEL" else arg for arg in arguments]
    result, lines = transfer_predict(*arguments)
    assert result.returncode == 2 and lines == []
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [message]


FLOWERS = ["daisy", "dandelion", "roses", "sunflowers", "tulips"]


@pytest.fixture(scope="module")
def k_class_model_dir(tmp_path_factory, shared_weights):
    """A five-class classifier (K-wide head), saved as the pipeline saves it."""
    import keras

    keras.utils.set_random_seed(1)
    folder = tmp_path_factory.mktemp("k_model")
    model = build_classifier(build_base(SIZE, str(shared_weights)), build_head(len(FLOWERS)))
    model.save(folder / "model.keras")
    (folder / "classes.json").write_text(json.dumps({"class_names": FLOWERS}))
    return folder


def predict_in_process(capsys, *args):
    """`python -m transfer predict` in this process (its model loads once per test, not per process)."""
    capsys.readouterr()
    status = main(["predict", *map(str, args)])
    out, err = capsys.readouterr()
    return status, [json.loads(line) for line in out.splitlines()], err


def test_k_class_predict_names_the_most_probable_class_and_the_top_three(
    k_class_model_dir, mixed_folder, capsys
):
    import keras

    files = [mixed_folder / "a_good.jpg", mixed_folder / "b_good.jpg", mixed_folder / "e_alpha.png"]
    status, lines, _ = predict_in_process(capsys, k_class_model_dir / "model.keras", *files)
    assert status == 0
    model = keras.models.load_model(k_class_model_dir / "model.keras")
    logits = model.predict(np.stack([load_image(path, SIZE) for path in files]), verbose=0)
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    for line, row in zip(lines, probabilities):
        assert set(line) == {"path", "label", "score", "top"}
        assert line["label"] == FLOWERS[int(np.argmax(row))]
        assert line["score"] == pytest.approx(row.max(), abs=1e-5)
        assert [name for name, _ in line["top"]] == [FLOWERS[i] for i in np.argsort(-row)[:3]]
        assert [p for _, p in line["top"]] == pytest.approx(sorted(row, reverse=True)[:3], abs=1e-5)


def test_top_k_and_tta_on_a_k_class_model(k_class_model_dir, mixed_folder, capsys):
    model, image = k_class_model_dir / "model.keras", mixed_folder / "a_good.jpg"
    _, five, _ = predict_in_process(capsys, model, image, "--top", "9")  # capped at K
    assert len(five[0]["top"]) == 5 and sum(p for _, p in five[0]["top"]) == pytest.approx(1, abs=1e-4)
    _, none, _ = predict_in_process(capsys, model, image, "--top", "0")
    assert "top" not in none[0]
    _, tta, _ = predict_in_process(capsys, model, image, "--tta")
    assert tta[0]["score"] != five[0]["score"]


def test_threshold_on_a_k_class_model_is_one_line_and_exit_2(k_class_model_dir, mixed_folder, capsys):
    status, lines, err = predict_in_process(
        capsys, k_class_model_dir / "model.keras", mixed_folder, "--threshold", "0.3"
    )
    assert status == 2 and lines == []
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "--threshold is for two-class models; this one has 5 classes" in errors[0]


def test_class_names_that_do_not_fit_the_model_are_an_error(
    k_class_model_dir, tmp_path, mixed_folder, capsys
):
    import shutil

    shutil.copy(k_class_model_dir / "model.keras", tmp_path / "model.keras")
    (tmp_path / "classes.json").write_text(json.dumps({"class_names": ["cat", "dog"]}))
    status, lines, err = predict_in_process(capsys, tmp_path / "model.keras", mixed_folder / "a_good.jpg")
    assert status == 2 and lines == []
    assert "the model gives 5 logits but classes.json names 2 classes" in err


def test_predict_never_imports_matplotlib_or_tensorflow_for_tflite():
    code = (
        "import sys, transfer.__main__, transfer.deploy.predict\n"
        "assert 'matplotlib' not in sys.modules, 'matplotlib'\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow'\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, check=True, timeout=120)


def test_a_cached_conversion_of_a_plain_model_runs_without_importing_tensorflow(model_dir, mixed_folder):
    image = mixed_folder / "a_good.jpg"
    warm, expected = transfer_predict(model_dir / "model.keras", image)
    assert warm.returncode == 0, warm.stderr
    assert predict_listing_imports(model_dir / "model.keras", image) == (0, [], expected)


def test_a_batch_of_only_unreadable_files_is_reported_and_the_run_goes_on(model_dir, mixed_folder, capsys):
    files = [mixed_folder / "c_truncated.jpg", mixed_folder / "a_good.jpg", mixed_folder / "d_text.jpg"]
    status, lines, _ = predict_in_process(capsys, model_dir / "model.keras", *files, "--batch-size", "1")
    assert status == 1
    assert ["error" in line for line in lines] == [True, False, True]
    assert lines[1]["label"] in ("cat", "dog")


def test_a_model_litert_cannot_run_falls_back_to_keras_with_one_notice(tmp_path, mixed_folder, capsys):
    import keras

    # Area resizing (TensorFlow's ResizeArea) has no LiteRT builtin.
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Resizing(16, 16, interpolation="area")(inputs)
    keras.Model(inputs, keras.layers.Dense(1)(keras.layers.GlobalAveragePooling2D()(x))).save(
        tmp_path / "model.keras"
    )
    (tmp_path / "classes.json").write_text(json.dumps({"class_names": ["cat", "dog"]}))
    image = mixed_folder / "a_good.jpg"
    status, auto, err = predict_in_process(capsys, tmp_path / "model.keras", image)
    assert status == 0 and auto[0]["label"] in ("cat", "dog")
    notices = [line for line in err.splitlines() if line.startswith("notice:")]
    assert len(notices) == 1 and "running" in notices[0] and "with Keras" in notices[0]
    assert "ResizeArea" in notices[0]
    _, keras_lines, _ = predict_in_process(capsys, tmp_path / "model.keras", image, "--runtime", "keras")
    assert auto == keras_lines
    status, lines, err = predict_in_process(capsys, tmp_path / "model.keras", image, "--runtime", "litert")
    assert status == 2 and lines == []
    assert err.splitlines()[-1].startswith(f"error: cannot run {tmp_path / 'model.keras'} with LiteRT:")


def test_runtime_keras_needs_a_keras_file(tmp_path, mixed_folder, capsys):
    (tmp_path / "model.tflite").write_bytes(bytes(4) + b"TFL3" + bytes(24))  # an empty TFLite model
    (tmp_path / "classes.json").write_text(json.dumps({"class_names": ["cat", "dog"]}))
    image = mixed_folder / "a_good.jpg"
    status, _, err = predict_in_process(capsys, tmp_path / "model.tflite", image, "--runtime", "keras")
    assert status == 2
    assert err.strip().splitlines()[-1] == (
        f"error: --runtime keras needs a .keras model; {tmp_path / 'model.tflite'} runs in litert only"
    )


def test_the_installed_transfer_command_runs_predict(model_dir, mixed_folder):
    # requirements.txt installs the package: `transfer` is a console script beside python.
    command = Path(sys.executable).parent / "transfer"
    files = [mixed_folder / "a_good.jpg", mixed_folder / "e_alpha.png"]
    result = subprocess.run(
        [str(command), "predict", "--runtime", "keras", str(model_dir / "model.keras"), *map(str, files)],
        cwd=mixed_folder,  # anywhere: the command finds its package without the checkout
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    _, expected = transfer_predict("--runtime", "keras", model_dir / "model.keras", *files)
    assert [json.loads(line) for line in result.stdout.splitlines()] == expected


RANDOM_BYTES = np.random.default_rng(0).bytes(5000)


@pytest.mark.parametrize(
    "model_name, model_bytes, classes_json, message",
    [
        ("model.tflite", RANDOM_BYTES, None, "not a TFLite model: {model} (it lacks the TFL3"),
        ("model.tflite", RANDOM_BYTES, '{"class_names": ["a", "b"]}', "not a TFLite model: {model}"),
        ("model.keras", RANDOM_BYTES, '{"class_names": ["a", "b"]}', "cannot load {model}: not a Keras"),
        ("model.keras", None, "not json", "{classes} is not valid JSON"),
        ("model.keras", None, "{}", '{classes}: "class_names" must be a list of two or more distinct'),
        ("model.keras", None, '{"class_names": "cd"}', "class names, found 'cd'"),
        ("model.keras", None, '{"class_names": ["cat"]}', "class names, found ['cat']"),
        ("model.keras", None, '{"class_names": ["cat", "cat"]}', "class names, found ['cat', 'cat']"),
    ],
)
def test_a_bad_model_or_classes_file_is_one_error_line_and_exit_2(
    tmp_path, model_dir, mixed_folder, capsys, model_name, model_bytes, classes_json, message
):
    model = tmp_path / model_name
    model.write_bytes(model_bytes if model_bytes is not None else (model_dir / "model.keras").read_bytes())
    if classes_json is not None:
        (tmp_path / "classes.json").write_text(classes_json)
    status, lines, err = predict_in_process(capsys, model, mixed_folder / "a_good.jpg")
    assert status == 2 and lines == []
    assert err.splitlines()[-1].startswith("error: ")
    assert message.format(model=model, classes=tmp_path / "classes.json") in err.splitlines()[-1]
    assert "Traceback" not in err


def test_a_folder_with_no_image_to_predict_is_one_error_line_and_exit_2(model_dir, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("no image")
    (tmp_path / "photo.heic").write_bytes(b"HEIC is not decoded here")
    status, lines, err = predict_in_process(capsys, model_dir / "model.keras", tmp_path)
    assert status == 2 and lines == []
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"error: no images in {tmp_path}: a folder search picks up")


def test_a_folder_of_only_unreadable_images_says_so_and_exits_1(model_dir, tmp_path, capsys):
    (tmp_path / "a.jpg").write_text("not an image")
    (tmp_path / "b.png").write_bytes(b"")
    status, lines, err = predict_in_process(capsys, model_dir / "model.keras", tmp_path)
    assert status == 1 and all("error" in line for line in lines) and len(lines) == 2
    assert err.strip().splitlines()[-1] == "error: none of the 2 files could be read as an image"


def test_a_folder_search_and_a_named_file_accept_the_same_formats(tmp_path):
    from PIL import Image

    from transfer.data.images import IMAGE_SUFFIXES, PHOTO_FORMATS, try_load_image

    Image.init()
    for suffix, name in Image.registered_extensions().items():
        if name in PHOTO_FORMATS and name in Image.SAVE:
            path = make_image(tmp_path / f"image{suffix}", (200, 60, 60), fmt=name)
            image, error = try_load_image(path, 16)
            assert error is None and suffix in IMAGE_SUFFIXES, (suffix, error)
    assert ".avif" in IMAGE_SUFFIXES  # decoded when named, so listed from folders too
    # A format outside the list is refused when named, as a folder search skips it.
    make_image(tmp_path / "image.pcx", (200, 60, 60), fmt="PCX")
    assert ".pcx" not in IMAGE_SUFFIXES and try_load_image(tmp_path / "image.pcx", 16)[0] is None
    (tmp_path / "phone.heic").write_bytes(b"\x00\x00\x00\x18ftypheic")
    assert "pillow-heif" in try_load_image(tmp_path / "phone.heic", 16)[1]
