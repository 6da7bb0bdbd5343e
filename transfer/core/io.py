"""Writing outputs so that a crash never leaves a half-written one behind.

Everything is written to a hidden temporary sibling and renamed into place
when complete; rename is atomic on one file system.
"""

import csv
import fcntl
import hashlib
import io
import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path


def _temporary_sibling(path):
    # The original suffix is kept: Keras and NumPy pick the format from it.
    return path.with_name(f".partial-{path.name}")


def _remove(path):
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


@contextmanager
def atomic_path(path):
    """Yield a temporary path to write a file or folder to; move it to `path` on success."""
    path = Path(path)
    created = [parent for parent in reversed(path.parents) if not parent.exists()]
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = _temporary_sibling(path)
    _remove(temporary)  # left over from a killed run
    try:
        yield temporary
    except BaseException:
        _remove(temporary)
        for folder in reversed(created):  # leave no trace of a failed run
            if not any(folder.iterdir()):
                folder.rmdir()
        raise
    if path.is_dir() and not path.is_symlink() or temporary.is_dir():
        _remove(path)  # os.replace cannot put a folder in place of a folder, or of a file
    # A file replaces a file in one step: a reader (or a kill) never finds it missing.
    os.replace(temporary, path)


def write_text(path, text):
    with atomic_path(path) as temporary, open(temporary, "w") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())


def write_json(path, data):
    write_text(path, json.dumps(data, indent=2) + "\n")


def write_csv(path, rows, columns):
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buffer.getvalue())


def read_csv(path):
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def file_sha256(path):
    """The SHA-256 of a file's bytes, read a megabyte at a time."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def locked_folder(folder):
    """An exclusive lock on a folder, held while a file in it is read and rewritten: two writers
    (two `transfer review` servers, say) take turns. On the folder, not the file, because each
    write replaces the file (a new inode), and no lock file is created."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)


def update_mapping_file(path, changes, read, text):
    """Apply {key: value, or None to remove it} to the mapping read(path) gives, under the
    folder's lock, and write text(mapping) back by one atomic rename; returns the changed keys'
    values before (None: absent), what undoing writes back. data/exclusions.csv and
    data/labels.csv are updated so."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with locked_folder(path.parent):
        mapping = read(path)
        previous = {key: mapping.get(key) for key in changes}
        for key, value in changes.items():
            if value is None:
                mapping.pop(key, None)
            else:
                mapping[key] = value
        write_text(path, text(mapping))
    return previous
