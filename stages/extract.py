"""Stage 2: run the frozen base (model.backbone) once per image -> data/features."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a plain script

from transfer.backbones import check_params  # noqa: E402
from transfer.errors import run_stage  # noqa: E402
from transfer.features import extract_all  # noqa: E402
from transfer.io import atomic_path, write_json  # noqa: E402
from transfer.litert import outputs_of  # noqa: E402
from transfer.model import base_facts, build_base, build_feature_extractor  # noqa: E402
from transfer.params import load_params  # noqa: E402
from transfer.runtime import RESOLVED_FILE, start  # noqa: E402


def main():
    params = load_params()
    check_params(params)
    model = params["model"]
    with start(params["runtime"], training=False, recorded=RESOLVED_FILE).scope():
        base = build_base(params["data"]["image_size"], model["weights"], model["backbone"])
        extractor = build_feature_extractor(base)
        features_of = outputs_of(extractor, params["extract"]["runtime"], params["runtime"]["threads"])
        with atomic_path("data/features") as features:
            features.mkdir()
            counts = extract_all(
                extractor, "data/prepared", features, params["extract"]["batch_size"], features_of
            )
    write_json(
        "metrics/extract.json",
        {
            **base_facts(base),
            "base_output_shape": list(base.output_shape[1:]),
            "images": counts,
        },
    )
    print(f"extracted features: {counts}")


if __name__ == "__main__":
    run_stage(main)
