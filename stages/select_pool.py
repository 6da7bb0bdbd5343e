"""The select stage (after calibrate): rank data.unlabeled's photos for labelling ->
metrics/to_label.csv (the batch to label, best first) and metrics/to_label_unknown.csv (the
photos the novelty check rejects: a new class, or junk). Without a pool, both hold a header."""

from transfer.config.params import load_params
from transfer.core import artifacts
from transfer.core.errors import run_stage
from transfer.core.io import write_csv
from transfer.core.records import write_record
from transfer.data.pool import pool_folder
from transfer.labelling.columns import TO_LABEL_COLUMNS, UNKNOWN_COLUMNS


def main():
    params = load_params()
    folder = pool_folder(params["data"])
    to_label, unknown, record = [], [], {"pool": 0}
    if folder is not None:  # TensorFlow and the models load only for a pool
        from transfer.labelling.ranking import rank_pool

        to_label, unknown, record = rank_pool(params, folder)
    write_csv(artifacts.TO_LABEL_TABLE, to_label, TO_LABEL_COLUMNS)
    write_csv(artifacts.TO_LABEL_UNKNOWN_TABLE, unknown, UNKNOWN_COLUMNS)
    write_record("select", record)
    print(f"select: {len(to_label)} photos to label, {len(unknown)} of none of the classes")


if __name__ == "__main__":
    run_stage(main)
