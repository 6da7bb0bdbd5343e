"""The pool stage: metrics/pool.json, what data.unlabeled holds (cheap: file metadata only, so it
runs on every repro; prepare and select depend on its file, not on the folder)."""

from transfer.config.params import load_params
from transfer.core.artifacts import POOL_LISTING
from transfer.core.errors import run_stage
from transfer.core.io import write_json
from transfer.data.pool import pool_listing


def main():
    listing = pool_listing(load_params()["data"])
    write_json(POOL_LISTING, listing)
    print(f"pool: {listing['photos']} unlabelled photos")


if __name__ == "__main__":
    run_stage(main)
