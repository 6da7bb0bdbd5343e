"""Where photos come from, one row per source (params.yaml's data.source picks one).

A source prepares data/prepared from its photos (transfer.data.shards) and hands back a
prepared photo's original encoded bytes by its id (what the export stage measures every
format on: transfer.data.originals). A new source is a module with those two functions, a
row here, and its own keys in params.yaml's data section (transfer.config.schema).
"""

from collections.abc import Callable
from dataclasses import dataclass

from transfer.core.errors import PipelineError
from transfer.data.sources import folder, tfds


@dataclass(frozen=True)
class DataSource:
    name: str
    # prepare(data, out_dir, exclusions) -> (counts {split: {class: n}}, skipped [(path, reason)]);
    # data: params.yaml's data section.
    prepare: Callable
    # originals(data, ids) -> the encoded bytes of each prepared id, in order.
    originals: Callable
    # photo_folder(data) -> the folder photo paths are relative to (data/exclusions.csv), or None.
    photo_folder: Callable = lambda data: None
    # file_of(data, id) -> the file behind a prepared photo, or None for a source without files.
    file_of: Callable = lambda data, photo_id: None


SOURCES = {
    source.name: source
    for source in (
        DataSource("tfds", tfds.prepare, tfds.originals),
        DataSource(
            "folder",
            folder.prepare,
            folder.originals,
            photo_folder=lambda data: data["path"],
            file_of=folder.file_of,
        ),
    )
}


def photo_file(data, photo):
    """The file behind a prepared photo's id, or None for a source that keeps its photos
    elsewhere (tfds)."""
    return get_source(data["source"]).file_of(data, photo)


def get_source(name):
    if name not in SOURCES:
        raise PipelineError(f"unknown data source {name!r}: one of {', '.join(SOURCES)}")
    return SOURCES[name]
