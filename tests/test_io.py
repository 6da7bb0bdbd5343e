import pytest

from transfer.core.io import atomic_path, read_csv, write_csv, write_json


def test_atomic_path_replaces_the_output_only_when_complete(tmp_path):
    target = tmp_path / "out" / "model.keras"
    write_json(target, {"version": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as temporary:
            temporary.write_text("half written")
            raise RuntimeError("crash")
    assert target.read_text() == '{\n  "version": 1\n}\n'
    assert sorted(path.name for path in target.parent.iterdir()) == ["model.keras"]


def test_a_failure_removes_the_folders_it_created(tmp_path):
    with pytest.raises(ValueError):
        with atomic_path(tmp_path / "data" / "prepared"):
            raise ValueError("bad input")
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_keeps_the_suffix_and_works_for_folders(tmp_path):
    with atomic_path(tmp_path / "features") as temporary:
        temporary.mkdir()
        (temporary / "a.npy").write_text("x")
    assert (tmp_path / "features" / "a.npy").read_text() == "x"
    with atomic_path(tmp_path / "model.keras") as temporary:
        assert temporary.suffix == ".keras"
        temporary.write_text("model")


def test_a_leftover_from_a_killed_run_is_cleared(tmp_path):
    (tmp_path / ".partial-features").mkdir()
    (tmp_path / ".partial-features" / "stale").write_text("old")
    with atomic_path(tmp_path / "features") as temporary:
        assert not temporary.exists()
        temporary.mkdir()
    assert list((tmp_path / "features").iterdir()) == []


def test_csv_round_trip(tmp_path):
    rows = [{"epoch": 1, "loss": 0.5}, {"epoch": 2, "loss": 0.25}]
    write_csv(tmp_path / "h.csv", rows, ["epoch", "loss"])
    assert read_csv(tmp_path / "h.csv") == [{"epoch": "1", "loss": "0.5"}, {"epoch": "2", "loss": "0.25"}]


def test_in_ci_a_missing_shared_folder_fails_instead_of_skipping(tmp_path):
    import os
    import subprocess
    import sys

    from tests.conftest import PROJECT_ROOT

    test = tmp_path / "test_needs_shared.py"
    test.write_text(
        "from tests.conftest import shared_weights  # noqa: F401\n\n\n"
        "def test_weights(shared_weights):\n    pass\n"
    )
    for ci, outcome in (("true", "1 error"), ("", "1 skipped")):  # error: the fixture fails
        env = {
            **os.environ,
            "CI": ci,
            "TRANSFER_SHARED": str(tmp_path / "nowhere"),
            "PYTHONPATH": str(PROJECT_ROOT),
        }
        command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", "0", "-q", str(test)]
        result = subprocess.run(
            command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120
        )
        assert outcome in result.stdout, result.stdout[-2000:]
