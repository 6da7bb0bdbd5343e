"""dvc.yaml lists exactly the code each stage reads, so a code change can never leave a stage stale."""

import re

import yaml

from tests.conftest import PACKAGE, PROJECT_ROOT, imported_modules
from transfer.epoch_log import STAGES as EPOCH_LOGS
from transfer.records import HEADLINE


def module_file(name):
    """transfer.x -> transfer/x.py; the package itself -> transfer/__init__.py; None if not a module."""
    path = PROJECT_ROOT.joinpath(*name.split("."))
    if path.with_suffix(".py").is_file():
        return path.with_suffix(".py")
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return None  # `from transfer.x import function`


def code_closure(script):
    """The stage script and every package file it reads, transitively, relative to the project."""
    seen, pending = set(), [PROJECT_ROOT / script]
    while pending:
        path = pending.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in imported_modules(path):
            # Importing transfer.x runs transfer/__init__.py first.
            for prefix in (PACKAGE, name):
                file = module_file(prefix)
                if file is not None and file not in seen:
                    pending.append(file)
    return {path.relative_to(PROJECT_ROOT).as_posix() for path in seen}


def stage_script(stage):
    """`python -m stages.prepare` -> stages/prepare.py."""
    command = stage["cmd"].split()
    assert command[:2] == ["python", "-m"], stage["cmd"]
    return command[2].replace(".", "/") + ".py"


def code_deps(stage):
    return {dep for dep in stage["deps"] if dep.endswith(".py")}


def test_every_stage_lists_exactly_the_code_it_imports():
    stages = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        assert code_deps(stage) == code_closure(stage_script(stage)), name


def test_the_closure_follows_function_level_imports(tmp_path):
    # predict imports transfer.model inside a method: it still counts.
    assert "transfer/model.py" in code_closure("transfer/predict.py")
    assert "transfer/figures.py" not in code_closure("transfer/predict.py")


def test_every_stage_that_sets_the_thread_count_has_it_in_its_cache_key():
    # The thread count changes fine-tuning's figures (README, Sweeps): a stage that applies
    # params.yaml's `runtime` section must rerun when runtime.threads changes.
    stages = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())["stages"]
    applying = []
    for name, stage in stages.items():
        script = (PROJECT_ROOT / stage_script(stage)).read_text()
        if 'params["runtime"]' in script and name != "runtime":
            applying.append(name)
            params = stage.get("params", [])
            assert "runtime.threads" in params or {"params.yaml": None} in params, name
    assert applying == ["extract", "train_head", "finetune", "calibrate", "evaluate", "export"]


def test_the_declared_metrics_are_the_headlines_and_the_training_logs():
    dvc_yaml = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())
    declared = {
        next(iter(entry)) if isinstance(entry, dict) else entry
        for stage in dvc_yaml["stages"].values()
        for entry in stage.get("metrics", [])
    }
    assert declared == {f"metrics/{name}.json" for name in HEADLINE} | {
        f"dvclive/{stage}/metrics.json" for stage in EPOCH_LOGS
    }


def test_every_record_a_stage_writes_is_an_output_of_it():
    stages = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        outputs = {next(iter(entry)) if isinstance(entry, dict) else entry for entry in stage.get("outs", [])}
        source = (PROJECT_ROOT / stage_script(stage)).read_text()
        for code in sorted(code_closure(stage_script(stage))):
            source += (PROJECT_ROOT / code).read_text()
        for record in re.findall(r'write_record\(\s*"(\w+)"', source):
            assert f"metrics/details/{record}.json" in outputs, (name, record)


def test_the_stages_worth_a_run_cache_keep_it():
    # DVC saves no run cache for a stage with a `cache: false` output that is neither a metric
    # nor a plot: extract (the costly features), calibrate and export must have none.
    stages = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())["stages"]
    for name in ("extract", "calibrate", "export"):
        uncached = [
            next(iter(entry))
            for entry in stages[name]["outs"]
            if isinstance(entry, dict) and next(iter(entry.values())).get("cache") is False
        ]
        assert uncached == [], name
