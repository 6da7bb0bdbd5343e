"""Stage 2: run the frozen base (model.backbone) once per image -> data/features."""

from transfer.config.params import load_params
from transfer.core.artifacts import FEATURES, PREPARED
from transfer.core.errors import run_stage
from transfer.core.io import atomic_path
from transfer.core.records import write_record
from transfer.data.features import extract_all
from transfer.distribute.runtime import RESOLVED_FILE, start
from transfer.inference.runners import network_runner
from transfer.models.networks import base_facts, build_base, build_feature_extractor


def main():
    params = load_params()
    model = params["model"]
    with start(params["runtime"], training=False, recorded=RESOLVED_FILE).scope():
        base = build_base(params["data"]["image_size"], model["weights"], model["backbone"])
        extractor = build_feature_extractor(base)
        runner = network_runner(extractor, params["extract"]["runtime"], params["runtime"]["threads"])
        with atomic_path(FEATURES) as features:
            features.mkdir()
            counts = extract_all(runner, PREPARED, features, params["extract"]["batch_size"])
    write_record(
        "extract",
        {
            **base_facts(base),
            "base_output_shape": list(base.output_shape[1:]),
            "images": counts,
        },
    )
    print(f"extracted features: {counts}")


if __name__ == "__main__":
    run_stage(main)
