"""A per-user cache of files the project derives (LiteRT conversions) that never hands back
what it did not write itself.

A cache is as trustworthy as the folder it lives in, so the folder is checked as ssh checks
~/.ssh: `$XDG_CACHE_HOME/transfer/<name>` (default `~/.cache/transfer/<name>`) is created
private (mode 0700) and used only while it is a real folder (not a symbolic link) owned by
this user and writable by nobody else. There is no shared fallback (a folder under the
system's temporary directory can be planted by any local user): where the cache cannot be
used, one notice says why and the conversion is made in memory, for this run only.

Every entry is written with a record of the sha256 of its bytes. On a read, the entry and
its record must be regular files owned by this user and writable by nobody else, and the
bytes must match the record; anything else is made again and overwritten. The bytes handed
back are the ones checked, read once: the file cannot change between the check and its use.
"""

import hashlib
import os
import stat
import sys
import tempfile
from pathlib import Path


def cache_folder(name):
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "transfer" / name


def why_untrusted(path, kind):
    """None if path is a `kind` ("folder" or "file") this user owns and nobody else can
    write, else the reason (a phrase)."""
    try:
        status = os.lstat(path)
    except OSError:
        return "missing"
    is_kind = stat.S_ISDIR if kind == "folder" else stat.S_ISREG
    if not is_kind(status.st_mode):
        return f"not a {kind}" + (" (a symbolic link)" if stat.S_ISLNK(status.st_mode) else "")
    if status.st_uid != os.geteuid():
        return f"owned by another user (uid {status.st_uid})"
    if status.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return "writable by other users"
    return None


class PrivateCache:
    """Entries `<key><suffix>` with their records `<key>.sha256` in cache_folder(name)."""

    def __init__(self, name, suffix):
        self.name = name
        self.suffix = suffix

    @property
    def folder(self):
        return cache_folder(self.name)  # read when used: XDG_CACHE_HOME may change

    def get(self, key, make, announce=None):
        """The bytes cached under key, or make() -> bytes, cached for next time.
        announce() is called before a make()."""
        problem = self.folder_problem()
        if problem is None:
            found = self.read(key)
            if found is not None:
                return found
        if announce is not None:
            announce()
        content = make()
        if problem is None:
            problem = self.write(key, content)
        if problem is not None:
            print(f"notice: not caching in {self.folder}: {problem}; made for this run only", file=sys.stderr)
        return content

    def folder_problem(self):
        """None when the folder can be used (created private if missing), else why not."""
        if not os.path.lexists(self.folder):
            try:
                self.folder.parent.mkdir(parents=True, exist_ok=True)
                self.folder.mkdir(mode=0o700)
            except OSError as error:
                return f"cannot create it ({error.strerror or error})"
        reason = why_untrusted(self.folder, "folder")
        if reason is not None:
            return f"it is {reason} (remove it: it is made again)"
        return None

    def paths(self, key):
        return self.folder / f"{key}{self.suffix}", self.folder / f"{key}.sha256"

    def read(self, key):
        entry, record = self.paths(key)
        if why_untrusted(entry, "file") or why_untrusted(record, "file"):
            return None
        try:
            content = _read_no_follow(entry)
            recorded = _read_no_follow(record).decode("ascii", errors="replace").strip()
        except OSError:
            return None
        return content if hashlib.sha256(content).hexdigest() == recorded else None

    def write(self, key, content):
        """Write the entry, then its record (an entry without a matching record is never
        read); None, or why it could not be written."""
        entry, record = self.paths(key)
        try:
            _write_private(entry, content)
            _write_private(record, hashlib.sha256(content).hexdigest().encode() + b"\n")
        except OSError as error:
            return f"cannot write to it ({error.strerror or error})"
        return None


def _read_no_follow(path):
    descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(descriptor, "rb") as file:
        return file.read()


def _write_private(path, content):
    """Write a file only its owner can read or write (mkstemp's mode 0600), atomically.

    Not transfer.core.io.atomic_path: its temporary sibling has a fixed name, and two processes
    may convert the same model into this cache at once; mkstemp's name is unique, and the
    file is private from its creation, not after a chmod."""
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".partial-")
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(content)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
