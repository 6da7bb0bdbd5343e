"""`transfer review`'s server on a real prepared project: what it serves, what it writes, and
what it refuses (token, Host header, paths outside the dataset, malformed requests)."""

import io
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest
from PIL import Image

from tests.conftest import jpeg_with_orientation, make_image_folder, new_project, run
from tests.review_client import Client, review_server
from transfer.core.io import file_sha256, read_csv
from transfer.data.exclusions import Decision, Exclusions
from transfer.review.decisions import effective_action
from transfer.review.photos import prepared_jpeg


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("review")
    photos = make_image_folder(tmp / "photos", per_class=20)
    # A phone photo stored sideways (EXIF orientation 6): the card shows it upright.
    (photos / "cats" / "sideways.jpg").write_bytes(
        jpeg_with_orientation(np.full((40, 80, 3), (200, 60, 60), np.uint8), 6)
    )
    (tmp / "secret.txt").write_text("not a photo of the dataset")
    repo, _ = new_project(tmp, photos, first_run=["prepare"])
    return repo, photos


@pytest.fixture(scope="module")
def server(project):
    repo, _ = project
    with review_server(repo) as (address, process):
        yield Client(address), process


@pytest.fixture(autouse=True)
def no_decisions(project):
    """Every test starts from the shipped, header-only file."""
    (project[0] / "data" / "exclusions.csv").write_text("path,action\n")


def test_the_address_is_local_with_a_token(server):
    client, _ = server
    assert len(client.token) >= 32
    status, page, headers = client.request("GET", f"/?token={client.token}", token=False)
    assert status == 200 and b"review.js" in page and client.token.encode() in page
    assert headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert headers["Referrer-Policy"] == "no-referrer"


@pytest.mark.parametrize(
    "path", ["/", "/api/state", "/api/queues/labels", "/api/photo?path=cats/000.jpg", "/assets/review.js"]
)
@pytest.mark.parametrize("token", [None, "wrong", ""])
def test_a_missing_or_wrong_token_is_403(server, path, token):
    client, _ = server
    query = "" if token is None else f"{'&' if '?' in path else '?'}token={token}"
    status, body, _ = client.request("GET", path + query, token=False)
    assert (
        status == 403
        and body == b"error: a missing or wrong token: open the address `transfer review` printed\n"
    )


@pytest.mark.parametrize(
    "host", ["evil.example:{port}", "127.0.0.1:1", "localhost.evil.example:{port}", "0.0.0.0:{port}"]
)
def test_a_host_header_that_is_not_this_server_is_403_even_with_the_token(server, host):
    """A DNS-rebinding page reaches 127.0.0.1 under its own name, and sends that name."""
    client, _ = server
    status, body, _ = client.request("GET", "/api/state", host=host.format(port=client.port))
    assert status == 403 and body.startswith(b"error: the Host header must be 127.0.0.1:")
    status, _, _ = client.request(
        "POST",
        "/api/decisions",
        {"decisions": [{"path": "cats/000.jpg", "action": "drop"}]},
        host=host.format(port=client.port),
    )
    assert status == 403


def test_it_listens_on_the_loopback_address_only(server):
    client, process = server
    listening = [
        line.split()
        for line in open("/proc/net/tcp").read().splitlines()[1:]
        if line.split()[3] == "0A" and int(line.split()[1].split(":")[1], 16) == client.port
    ]
    assert [entry[1].split(":")[0] for entry in listening] == ["0100007F"]  # 127.0.0.1


def test_a_photo_is_served_upright_and_downsized(server, project):
    client, _ = server
    status, body, headers = client.request("GET", "/api/photo?path=cats/sideways.jpg")
    assert status == 200 and headers["Content-Type"] == "image/jpeg"
    image = Image.open(io.BytesIO(body))
    assert image.size == (40, 80)  # stored 80 x 40, turned by its EXIF orientation


@pytest.mark.parametrize(
    "path",
    [
        "../secret.txt",
        "../../secret.txt",
        "cats/../../secret.txt",
        "/etc/passwd",
        "cats/missing.jpg",
        "cats",
        "%00",
    ],
)
def test_a_path_outside_the_dataset_is_404(server, project, path):
    client, _ = server
    status, body, _ = client.request("GET", f"/api/photo?path={quote(path)}")
    assert status == 404 and body.startswith(b"error: not a photo of this dataset") and body.count(b"\n") == 1
    status, _, _ = client.request("GET", f"/assets/{quote(path, safe='')}")
    assert status == 404
    status, body, _ = client.request(
        "POST", "/api/decisions", {"decisions": [{"path": path, "action": "drop"}]}
    )
    assert status == 404


@pytest.mark.parametrize(
    "body, message",
    [
        (b"{not json", b"the body is not JSON"),
        (b"[]", b'the body must be {"decisions": [1 to 1000 objects]}'),
        ({"decisions": []}, b'the body must be {"decisions"'),
        ({"decisions": [{"path": "cats/000.jpg"}]}, b'each decision is {"path"'),
        (
            {"decisions": [{"path": "cats/000.jpg", "action": 3}]},
            b"action must be one of drop, keep, cats, dogs or null",
        ),
        ({"decisions": [{"path": "cats/000.jpg", "action": "wolves"}]}, b"action must be one of"),
        (
            {"decisions": [{"path": "cats/000.jpg", "action": "drop", "reason": "a\nb"}]},
            b"reason must be one line",
        ),
        ({"decisions": [{"path": "cats/000.jpg", "action": "drop", "extra": 1}]}, b"each decision is"),
        ({"decisions": [{"path": "cats/000.jpg", "action": "drop"}] * 2}, b"is decided twice"),
        (b"\xff\xfe", b"the body is not JSON"),
    ],
)
def test_a_malformed_request_is_one_400_line_and_writes_nothing(server, project, body, message):
    client, _ = server
    before = (project[0] / "data" / "exclusions.csv").read_bytes()
    status, answer, _ = client.request("POST", "/api/decisions", body)
    assert status == 400 and message in answer and answer.count(b"\n") == 1 and answer.startswith(b"error: ")
    assert (project[0] / "data" / "exclusions.csv").read_bytes() == before


def test_a_photo_request_without_a_path_is_one_400_line(server):
    client, _ = server
    status, body, _ = client.request("GET", "/api/photo")
    assert status == 400 and body == b"error: give the photo as ?path=, its id in the audit's lists\n"


def test_decisions_are_lines_of_exclusions_with_the_photos_hash_and_undo_restores_them(server, project):
    repo, photos = project
    client, _ = server
    answer = client.json(
        "POST",
        "/api/decisions",
        {
            "decisions": [
                {"path": "cats/000.jpg", "action": "dogs"},
                {"path": "dogs/003.jpg", "action": "drop", "reason": "ambiguous"},
                {"path": "cats/001.jpg", "action": "cats"},  # its own class: a keep
            ]
        },
    )
    assert answer["waiting"] == 2 and answer["command"] == "dvc repro"  # the keep waits for nothing
    assert answer["previous"] == [
        {"path": path, "action": None, "reason": ""}
        for path in ("cats/000.jpg", "dogs/003.jpg", "cats/001.jpg")
    ]
    rows = read_csv(repo / "data" / "exclusions.csv")
    assert rows == [
        {
            "path": "cats/000.jpg",
            "action": "dogs",
            "reason": "",
            "sha256": file_sha256(photos / "cats/000.jpg"),
        },
        {
            "path": "dogs/003.jpg",
            "action": "drop",
            "reason": "ambiguous",
            "sha256": file_sha256(photos / "dogs/003.jpg"),
        },
        {
            "path": "cats/001.jpg",
            "action": "keep",
            "reason": "",
            "sha256": file_sha256(photos / "cats/001.jpg"),
        },
    ]
    again = client.json("POST", "/api/decisions", {"decisions": [{"path": "cats/000.jpg", "action": "keep"}]})
    assert again["previous"] == [{"path": "cats/000.jpg", "action": "dogs", "reason": ""}]
    client.json("POST", "/api/undo", {"previous": again["previous"]})
    client.json("POST", "/api/undo", {"previous": answer["previous"]})
    assert Exclusions.read(repo / "data" / "exclusions.csv").decisions == {}
    # Nothing else in the project changed: git sees the one file, and it is back as it was.
    changed = run(["git", "status", "--porcelain", "--untracked-files=all"], repo).stdout.splitlines()
    assert changed in ([], [" M data/exclusions.csv"])


def test_keeping_a_photo_moved_before_keeps_the_move():
    moved = Decision("dogs")
    assert effective_action("keep", moved, shown_class="dogs") == "dogs"  # the move ran: keep it
    assert effective_action("keep", moved, shown_class="cats") == "keep"  # not run yet: undone
    assert effective_action("cats", None, shown_class="cats") == "keep"
    assert effective_action("drop", moved, shown_class="dogs") == "drop"


def test_a_server_killed_while_writing_leaves_the_file_whole(project):
    repo, _ = project
    with review_server(repo) as (address, process):
        client = Client(address)
        photos = [f"{kind}/{index:03d}.jpg" for kind in ("cats", "dogs") for index in range(20)]
        errors = []

        def decide():
            for round_ in range(1000):
                for photo in photos:
                    try:
                        client.request(
                            "POST",
                            "/api/decisions",
                            {
                                "decisions": [
                                    {
                                        "path": photo,
                                        "action": "drop" if round_ % 2 else "keep",
                                        "reason": "x" * 150,
                                    }
                                ]
                            },
                        )
                    except OSError as error:
                        errors.append(error)
                        return

        writers = [threading.Thread(target=decide) for _ in range(2)]
        for writer in writers:
            writer.start()
        threading.Event().wait(1.5)
        os.kill(process.pid, signal.SIGKILL)
        for writer in writers:
            writer.join()
    assert errors  # the server died under them
    decisions = Exclusions.read(repo / "data" / "exclusions.csv").decisions
    assert set(decisions) <= set(photos) and len(decisions) > 0  # read whole: every line complete


def test_before_the_audit_every_queue_says_which_stage_fills_it(server):
    client, _ = server
    state = client.json("GET", "/api/state")
    assert state["classes"] == ["cats", "dogs"] and state["waiting"] == 0
    assert [(queue["name"], queue["count"]) for queue in state["queues"]] == [
        ("labels", None), ("duplicates", None), ("outliers", None), ("mistakes", None), ("unknown", None),
        ("to_label", None),
    ]  # fmt: skip
    queue = client.json("GET", "/api/queues/labels")
    assert (
        queue["cards"] == []
        and queue["missing"] == "metrics/label_issues.csv is not there yet: run `dvc repro audit`"
    )
    status, body, _ = client.request("GET", "/api/queues/nothing")
    assert status == 404 and body.startswith(b"error: no queue 'nothing'")


def review_command(cwd, *arguments):
    return subprocess.run(
        [sys.executable, "-m", "transfer", "review", "--no-browser", *arguments],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_outside_a_prepared_project_it_says_what_to_run(tmp_path):
    result = review_command(tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [
        f"error: no prepared data in {Path('data/prepared')}: run the pipeline first (dvc repro, "
        "or dvc repro audit for the audit's lists alone)"
    ]


def test_a_port_in_use_is_one_line(server, project):
    client, _ = server
    result = review_command(project[0], "--port", str(client.port))
    assert result.returncode == 2
    assert (
        result.stderr.splitlines()[-1]
        == f"error: cannot listen on 127.0.0.1:{client.port}: Address already in use"
    )


def test_a_source_without_files_shows_the_prepared_pixels(project):
    repo, _ = project
    meta = json.loads((repo / "data" / "prepared" / "meta.json").read_text())
    shard = repo / "data" / "prepared" / meta["splits"]["train"]["shards"][0]
    image = Image.open(io.BytesIO(prepared_jpeg(shard, 0)))
    assert image.format == "JPEG" and image.size == (meta["image_size"], meta["image_size"])
