"""dvc.yaml lists exactly the code each stage reads, so a code change can never leave a stage stale."""

import re
import shutil

import yaml

from tests.conftest import PACKAGE, PROJECT_ROOT, imported_modules, run
from transfer.core.records import HEADLINE
from transfer.training.epoch_log import STAGES as EPOCH_LOGS


def module_file(name):
    """transfer.x.y -> transfer/x/y.py; a package -> its __init__.py; None if not a module."""
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
            # Importing transfer.x.y runs transfer/__init__.py and transfer/x/__init__.py first.
            parts = name.split(".")
            for depth in range(1, len(parts) + 1):
                file = module_file(".".join(parts[:depth]))
                if file is not None and file not in seen:
                    pending.append(file)
    return {path.relative_to(PROJECT_ROOT).as_posix() for path in seen}


def code_dependencies(files):
    """What dvc.yaml lists for code files: the stage script, files at the package's top
    (transfer/__init__.py), and each subpackage a file lies in as one folder."""
    listed = set()
    for file in files:
        parts = file.split("/")
        listed.add("/".join(parts[:2]) if parts[0] == PACKAGE and len(parts) > 2 else file)
    return listed


def stage_script(stage):
    """`python -m stages.prepare` -> stages/prepare.py."""
    command = stage["cmd"].split()
    assert command[:2] == ["python", "-m"], stage["cmd"]
    return command[2].replace(".", "/") + ".py"


def code_deps(stage):
    return {dep for dep in stage["deps"] if dep.split("/")[0] in ("stages", PACKAGE)}


def covered(file, deps):
    return file in deps or any(file.startswith(dep + "/") for dep in deps)


def test_every_stage_lists_exactly_the_code_it_imports():
    stages = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        closure = code_closure(stage_script(stage))
        assert code_deps(stage) == code_dependencies(closure), name
        # Every module it imports, parent __init__.py files included, is inside a dependency.
        assert all(covered(file, code_deps(stage)) for file in closure), name


def test_python_caches_do_not_change_a_folder_dependency(tmp_path):
    # A folder dependency hashes every file in it: .pyc files differ by Python version and
    # appear once a stage has imported the code, which would rerun every stage elsewhere.
    # The project's .dvcignore leaves them out: a real DVC repository with one such stage.
    (tmp_path / "transfer" / "core").mkdir(parents=True)
    (tmp_path / "transfer" / "core" / "io.py").write_text("WRITTEN = 1\n")
    shutil.copy(PROJECT_ROOT / ".dvcignore", tmp_path / ".dvcignore")
    run(["git", "init", "-q"], tmp_path)
    run(["dvc", "init", "-q"], tmp_path)
    stage = ["dvc", "stage", "add", "-q", "-n", "uses_core", "-d", "transfer/core", "-o", "out.txt"]
    run([*stage, "echo done > out.txt"], tmp_path)
    run(["dvc", "repro", "-q"], tmp_path)
    cache = tmp_path / "transfer" / "core" / "__pycache__"
    cache.mkdir()
    (cache / "io.cpython-311.pyc").write_bytes(b"compiled")
    assert "up to date" in run(["dvc", "status"], tmp_path).stdout
    (tmp_path / "transfer" / "core" / "io.py").write_text("WRITTEN = 2\n")  # a real change counts
    assert "modified:           transfer/core" in run(["dvc", "status"], tmp_path).stdout


def test_the_closure_follows_function_level_imports(tmp_path):
    # The runners import transfer.inference.deployed inside a function: it still counts.
    assert "transfer/inference/deployed.py" in code_closure("transfer/inference/runners.py")
    assert "transfer/reporting/figures.py" not in code_closure("transfer/deploy/predict.py")


def test_every_path_the_artifacts_module_names_is_an_output_of_a_stage():
    from transfer.core import artifacts

    stages = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())["stages"]
    outputs = {
        next(iter(entry)) if isinstance(entry, dict) else entry
        for stage in stages.values()
        for kind in ("outs", "metrics", "plots")
        for entry in stage.get(kind, [])
    }
    named = [value for name, value in vars(artifacts).items() if name.isupper() and "/" in str(value)]
    named += [
        artifacts.EXPORT,
        artifacts.curve_table("roc", "head"),
        artifacts.curve_table("per_class", "roc"),
    ]
    for path in named:
        assert path in outputs or any(path.startswith(output + "/") for output in outputs), path


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
