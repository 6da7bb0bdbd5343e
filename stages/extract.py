"""Stage 2: run the frozen base (model.backbone) once per image -> data/features."""

from transfer.artifacts import FEATURES, PREPARED
from transfer.errors import run_stage
from transfer.features import extract_all
from transfer.inference import outputs_of
from transfer.io import atomic_path
from transfer.model import base_facts, build_base, build_feature_extractor
from transfer.params import load_params
from transfer.records import write_record
from transfer.runtime import RESOLVED_FILE, start


def main():
    params = load_params()
    model = params["model"]
    with start(params["runtime"], training=False, recorded=RESOLVED_FILE).scope():
        base = build_base(params["data"]["image_size"], model["weights"], model["backbone"])
        extractor = build_feature_extractor(base)
        features_of = outputs_of(extractor, params["extract"]["runtime"], params["runtime"]["threads"])
        with atomic_path(FEATURES) as features:
            features.mkdir()
            counts = extract_all(extractor, PREPARED, features, params["extract"]["batch_size"], features_of)
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
