import pytest
import yaml

from tests.conftest import PROJECT_ROOT, default_params
from transfer.config.params import load_params, validate
from transfer.core.errors import PipelineError
from transfer.models.backbones import BACKBONES, check_params


def test_project_params_are_valid():
    params = load_params(PROJECT_ROOT / "params.yaml")
    assert params["data"]["source"] == "tfds"
    assert params["finetune"]["fine_tune_at"] == 100


@pytest.mark.parametrize(
    "section, key, value, expected",
    [
        ("data", "source", "kaggle", "data.source = 'kaggle' is invalid: must be one of tfds, folder"),
        ("data", "image_size", 0, "data.image_size = 0 is invalid"),
        ("data", "split", [0.8, 0.1], "data.split"),
        ("data", "split", [0.8, 0.1, 0.2], "summing to 1"),
        ("train_head", "learning_rate", 0, "train_head.learning_rate = 0 is invalid: must be a positive"),
        ("train_head", "learning_rate", -1e-4, "train_head.learning_rate"),
        ("train_head", "epochs", 0, "train_head.epochs = 0 is invalid"),
        ("train_head", "epochs", 2.5, "train_head.epochs = 2.5"),
        ("finetune", "epochs", -1, "finetune.epochs = -1"),
        ("finetune", "batch_size", 0, "finetune.batch_size = 0"),
        ("train_head", "batch_size", True, "train_head.batch_size = True"),
        ("finetune", "fine_tune_at", -5, "finetune.fine_tune_at = -5"),
        ("finetune", "fine_tune_at", "top", "finetune.fine_tune_at = 'top'"),
        ("finetune", "learning_rate", "fast", "finetune.learning_rate = 'fast'"),
        ("train_head", "dropout", 1.0, "train_head.dropout = 1.0"),
        ("train_head", "optimizer", "sgd", "optimizer = 'sgd' is invalid: must be one of rmsprop, adam"),
        ("finetune", "schedule", "linear", "must be one of constant, cosine"),
        ("finetune", "label_smoothing", 1.0, "finetune.label_smoothing = 1.0"),
        ("finetune", "early_stopping", -1, "finetune.early_stopping = -1"),
        ("finetune", "augment_zoom", 1.5, "finetune.augment_zoom = 1.5"),
        ("finetune", "augment_flip", "yes", "finetune.augment_flip = 'yes'"),
        ("evaluate", "tta", 1, "evaluate.tta = 1 is invalid: must be true or false"),
        ("train_head", "warmup_epochs", 2, "warmup_epochs = 2 is invalid: must be below train_head.epochs"),
    ],
)
def test_invalid_values_name_key_value_and_what_is_allowed(section, key, value, expected):
    params = default_params()
    params[section][key] = value
    with pytest.raises(PipelineError, match="^params.yaml: ") as error:
        validate(params)
    assert expected in str(error.value)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    "section, key, value, expected",
    [
        ("data", "image_size", 16, "must be at least 32, the smallest input mobilenet_v2 takes"),
        ("finetune", "fine_tune_at", 1.5, "finetune.fine_tune_at = 1.5 is invalid"),
        (
            "finetune",
            "fine_tune_at",
            155,
            "fine_tune_at = 155 is invalid: must be an integer layer index from 0 to 154",
        ),
        # 1.0 beside the integer 1 (layer 1) would mean the opposite: refused, with the way to say it.
        (
            "finetune",
            "fine_tune_at",
            1.0,
            "154 freezes every base layer) or a fraction of the layers with a decimal point in [0.0, 1.0)",
        ),
        (
            "model",
            "backbone",
            "mobilenetv2",
            "model.backbone = 'mobilenetv2' is unknown (did you mean 'mobilenet_v2'?)",
        ),
    ],
)
def test_backbone_limits_are_one_line_naming_the_rule(section, key, value, expected):
    params = default_params()
    params[section][key] = value
    # Part of every stage's validation: the first stage of a run refuses it, before any work.
    with pytest.raises(PipelineError, match="^params.yaml: ") as error:
        validate(params)
    assert expected in str(error.value)
    assert "\n" not in str(error.value)


def test_a_params_error_says_how_to_undo_a_dvc_exp_run_set_value(tmp_path):
    params = default_params()
    params["data"]["image_size"] = 10
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(PipelineError) as error:
        load_params(tmp_path / "params.yaml")
    assert str(error.value).startswith("params.yaml: data.image_size = 10 is invalid: must be at least 32")
    assert str(error.value).endswith("`git checkout params.yaml` restores the committed file)")


def test_a_missing_weights_file_is_refused_by_validation(tmp_path):
    params = default_params()
    params["model"]["weights"] = str(tmp_path / "missing.h5")
    with pytest.raises(PipelineError, match="model.weights: no such weights file: .*missing.h5"):
        validate(params)


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_each_backbones_limits_are_checked_before_any_work(name):
    backbone = BACKBONES[name]
    params = default_params()
    params["model"]["backbone"] = name
    params["data"]["image_size"] = backbone.min_image_size
    params["finetune"]["fine_tune_at"] = backbone.layers
    assert check_params(params) is backbone
    params["finetune"]["fine_tune_at"] = 0.65  # a fraction is valid on every backbone
    check_params(params)
    params["finetune"]["fine_tune_at"] = backbone.layers + 1
    with pytest.raises(PipelineError, match=f"from 0 to {backbone.layers} \\({name}'s layer count"):
        check_params(params)
    params["finetune"]["fine_tune_at"] = 0
    params["data"]["image_size"] = backbone.min_image_size - 1
    with pytest.raises(PipelineError, match=f"the smallest input {name} takes"):
        check_params(params)


def test_unknown_key_suggests_the_close_one():
    params = default_params()
    params["finetune"]["fine_tune_a"] = 3
    with pytest.raises(
        PipelineError, match=r"unknown key 'finetune.fine_tune_a' \(did you mean 'fine_tune_at'\?\)"
    ):
        validate(params)


def test_unknown_and_missing_sections():
    params = default_params()
    params["trian_head"] = params.pop("train_head")
    with pytest.raises(PipelineError, match=r"unknown section 'trian_head' \(did you mean 'train_head'\?\)"):
        validate(params)
    del params["trian_head"]
    with pytest.raises(PipelineError, match="missing section 'train_head'"):
        validate(params)


def test_bad_yaml_is_one_line(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("data: [unclosed\n")
    with pytest.raises(PipelineError, match="is not valid YAML") as error:
        load_params(path)
    assert "\n" not in str(error.value)


def test_yaml_cannot_run_code(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("data: !!python/object/apply:os.system ['touch pwned']\n")
    with pytest.raises(PipelineError):
        load_params(path)
    assert not (tmp_path / "pwned").exists()


def test_floats_in_exponent_form_as_dvc_writes_them_are_numbers(tmp_path):
    # `dvc exp run -S finetune.learning_rate=0.00001` writes 1e-05 (no dot).
    text = (PROJECT_ROOT / "params.yaml").read_text()
    text = text.replace("learning_rate: 0.00001", "learning_rate: 1e-05")
    text = text.replace("learning_rate: 0.0001", "learning_rate: 3E-4")
    (tmp_path / "params.yaml").write_text(text)
    params = load_params(tmp_path / "params.yaml")
    assert params["finetune"]["learning_rate"] == 1e-05
    assert params["train_head"]["learning_rate"] == 3e-4
    assert params["data"]["seed"] == 42 and params["data"]["split"] == [0.8, 0.1, 0.1]
