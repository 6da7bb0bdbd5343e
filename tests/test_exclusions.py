"""data/exclusions.csv: keep lines, content hashes, and updates that are whole or not at all."""

import multiprocessing
import os
import signal

import pytest

from transfer.core.io import file_sha256
from transfer.data.exclusions import (
    COLUMNS,
    Decision,
    Exclusions,
    update_exclusions,
)
from transfer.data.sources.folder import prepare_folder


def test_keep_changes_no_label_and_counts_nothing(tmp_path, image_folder):
    path = tmp_path / "exclusions.csv"
    path.write_text("path,action,reason,sha256\ncats/000.jpg,keep,,\ndogs/001.jpg,drop,ambiguous,\n")
    exclusions = Exclusions.read(path)
    counts, _ = prepare_folder(
        image_folder, tmp_path / "prepared", 32, [0.8, 0.1, 0.1], seed=0, exclusions=exclusions
    )
    assert exclusions.applied == {"drop": 1, "relabel": 0}
    assert sum(sum(split.values()) for split in counts.values()) == 39
    exclusions.check_all_applied()
    assert exclusions.decisions["dogs/001.jpg"] == Decision("drop", "ambiguous", "")


def test_a_kept_photo_is_reviewed_until_its_file_changes(tmp_path, image_folder):
    kept, relabelled, dropped = (
        image_folder / name for name in ("cats/000.jpg", "cats/001.jpg", "dogs/000.jpg")
    )
    update_exclusions(
        {
            "cats/000.jpg": Decision("keep", sha256=file_sha256(kept)),
            "cats/001.jpg": Decision("dogs", sha256=file_sha256(relabelled)),
            "dogs/000.jpg": Decision("drop", sha256=file_sha256(dropped)),
            "dogs/001.jpg": Decision("keep"),  # written by hand: no hash, kept by its path
        },
        tmp_path / "exclusions.csv",
    )
    exclusions = Exclusions.read(tmp_path / "exclusions.csv")
    reviewed = exclusions.reviewed(lambda photo: image_folder / photo)
    assert reviewed == {"cats/000.jpg", "cats/001.jpg", "dogs/001.jpg"}
    kept.write_bytes(kept.read_bytes() + b"\0")  # the same path, another file
    assert exclusions.reviewed(lambda photo: image_folder / photo) == {"cats/001.jpg", "dogs/001.jpg"}
    assert exclusions.reviewed(lambda photo: None) == {"cats/000.jpg", "cats/001.jpg", "dogs/001.jpg"}


def test_an_update_returns_what_undoing_it_writes_back(tmp_path):
    path = tmp_path / "data" / "exclusions.csv"
    path.parent.mkdir()
    path.write_text("path,action\ncats/1.jpg,drop\n")  # a hand-written file is kept, line for line
    before = path.read_text()
    previous = update_exclusions({"cats/1.jpg": Decision("dogs"), "cats/2.jpg": Decision("keep")}, path)
    assert previous == {"cats/1.jpg": Decision("drop"), "cats/2.jpg": None}
    assert Exclusions.read(path).actions == {"cats/1.jpg": "dogs", "cats/2.jpg": "keep"}
    assert path.read_text().splitlines()[0] == ",".join(COLUMNS)
    update_exclusions(previous, path)
    assert Exclusions.read(path).actions == Exclusions.read(tmp_path / "none").actions | {
        "cats/1.jpg": "drop"
    }
    assert before.splitlines()[1] == "cats/1.jpg,drop"
    assert sorted(os.listdir(path.parent)) == ["exclusions.csv"]  # nothing else left beside it


def write_many(path, worker, count):
    for index in range(count):
        update_exclusions({f"w{worker}/{index:04d}.jpg": Decision("drop", reason="x" * 200)}, path)


def test_two_writers_lose_no_decision(tmp_path):
    path = tmp_path / "exclusions.csv"
    workers = [multiprocessing.Process(target=write_many, args=(path, worker, 60)) for worker in range(2)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(timeout=120)
        assert process.exitcode == 0
    assert len(Exclusions.read(path).decisions) == 120


@pytest.mark.parametrize("delay", [0.1, 0.3, 0.6])
def test_a_killed_writer_leaves_the_file_whole(tmp_path, delay):
    path = tmp_path / "exclusions.csv"
    writer = multiprocessing.Process(target=write_many, args=(path, 0, 100_000))
    writer.start()
    writer.join(timeout=delay)
    os.kill(writer.pid, signal.SIGKILL)
    writer.join()
    written = Exclusions.read(path).decisions  # parses: a whole file, every line complete
    assert written, "killed before its first write: nothing was tested"
    assert list(written) == [f"w0/{index:04d}.jpg" for index in range(len(written))]
    assert path.read_text().endswith("\n")
