"""Every figure in metrics/details/<name>.json, the headline in metrics/<name>.json."""

import json

from transfer.core.records import HEADLINE, headline, read_record, write_record

EVALUATION = {
    "head": {"accuracy": 0.9, "loss": 0.3, "per_class": {"cats": {"recall": 0.8}}},
    "finetuned": {"accuracy": 0.95, "balanced_accuracy": 0.94, "auc": 0.99},
    "validation": {"accuracy": 0.96, "images": 275},
    "calibration": {"temperature": 2.0, "test": {"ece_before": 0.02, "ece_after": 0.01}},
    "novelty": {"threshold": 0.3, "unknown": {"photos": 0}},
}


def test_the_headline_keeps_the_records_nested_names_and_leaves_out_what_it_lacks():
    assert headline("eval", EVALUATION) == {
        "head": {"accuracy": 0.9},
        "finetuned": {"accuracy": 0.95, "balanced_accuracy": 0.94},
        "validation": {"accuracy": 0.96},
        "calibration": {"test": {"ece_after": 0.01}},
    }
    with_unknown = {**EVALUATION, "novelty": {"unknown": {"photos": 40, "rejected": 0.75}}}
    assert headline("eval", with_unknown)["novelty"] == {"unknown": {"rejected": 0.75}}


def test_a_record_is_written_whole_and_its_headline_beside(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_record("eval", EVALUATION)
    assert read_record("eval") == EVALUATION
    assert json.loads((tmp_path / "metrics" / "eval.json").read_text()) == headline("eval", EVALUATION)
    write_record("extract", {"images": {"train": 3}})  # no headline: details only
    assert read_record("extract") == {"images": {"train": 3}}
    assert not (tmp_path / "metrics" / "extract.json").exists()


def test_headline_figures_are_few():
    # `dvc exp show` shows one column per figure: the training logs add 12 (transfer.training.epoch_log).
    assert sum(len(keys) for keys in HEADLINE.values()) <= 15
