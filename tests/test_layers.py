"""The package's modules form layers: each imports only from layers below it, so inference
sits below predict, evaluation and export, and nothing low depends on a command."""

from tests.conftest import PROJECT_ROOT, imported_modules

LAYERS = [
    {"errors", "io", "progress", "quiet", "cache", "epoch_log"},
    {
        "multi_worker",
        "exclusions",
        "neighbours",
        "label_issues",
        "calibration",
        "torch_state",
        "backbones",
        "records",
    },
    {"__init__", "params", "artifacts", "task", "runtime", "figures", "plots_page", "novelty"},
    {"images", "shards", "metrics", "duplicates", "efficientnet_lite"},
    {"folder_source", "tfds_source", "model"},
    {"litert", "originals", "deployed"},
    {"inference", "features", "training"},
    {"audit", "calibrating"},
    {"finetuning", "evaluation", "serving", "report"},
    {"export", "predict"},
    {"__main__"},
]


def layer_of(module):
    return next(index for index, layer in enumerate(LAYERS) if module in layer)


def test_every_module_has_a_layer():
    modules = {path.stem for path in (PROJECT_ROOT / "transfer").glob("*.py")}
    assert modules == set().union(*LAYERS)


def test_modules_import_only_from_lower_layers():
    upward = []
    for path in sorted((PROJECT_ROOT / "transfer").glob("*.py")):
        for name in imported_modules(path):
            imported = name.split(".")[1] if "." in name else "__init__"
            if (PROJECT_ROOT / "transfer" / f"{imported}.py").is_file() and imported != path.stem:
                if layer_of(imported) >= layer_of(path.stem):
                    upward.append(f"{path.stem} imports {imported}")
    assert upward == []
