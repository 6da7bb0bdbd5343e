"""The export stage's work: write every format (formats.FORMATS) of the calibrated model, then
measure each against Keras on the test split's original files, through that format's own
preprocessing: the SavedModel gets the bytes; Keras and TFLite get the images a client makes
of them, as `predict` does."""

from transfer.core.artifacts import EXPORT, MODEL, PREPARED, write_class_names
from transfer.core.io import atomic_path
from transfer.core.progress import Progress
from transfer.data.originals import original_batches
from transfer.data.shards import image_count
from transfer.deploy.export.formats import FORMATS, ExportJob
from transfer.deploy.export.measure import REFERENCE, file_size, measure
from transfer.inference.bundle import open_bundle
from transfer.inference.deployed import keras_network
from transfer.inference.runners import named_outputs

TEST_BATCH = 64  # inference batch for the accuracy of each exported format


def export_model(config, data):
    """Write export/ (every format, and classes.json); returns export's record (transfer.core.records)."""
    bundle = open_bundle(MODEL)
    with ExportJob(bundle, keras_network(bundle), config) as job, atomic_path(EXPORT) as out:
        out.mkdir()
        write_class_names(out, job.task.class_names)
        with Progress("export: converting", len(FORMATS), unit="files") as progress:
            for export_format in FORMATS:
                export_format.write(job, out / export_format.file)
                progress.update(1)

        def keras_predict(encoded, images):
            return job.probabilities_and_known(named_outputs(job.model.predict_on_batch(images)))

        predictors, references, client_runs = {REFERENCE: keras_predict}, {}, {}
        for row in FORMATS:
            predictors[row.name], references[row.name] = row.predictor(job, out / row.file), REFERENCE
            for client in row.clients:
                name = f"{client.name} on {row.name}"
                predictors[name], references[name] = client.predictor(job, out / row.file), row.name
                client_runs[name] = client.name, row.name
        with Progress("export: measuring every format", image_count(PREPARED, ["test"])) as progress:
            batches = original_batches(data, PREPARED, "test", TEST_BATCH)
            measured = measure(job.task, predictors, references, batches, config["latency_images"], progress)
        sizes = {REFERENCE: file_size(MODEL), **{row.name: file_size(out / row.file) for row in FORMATS}}
    return export_record(measured, sizes, client_runs)


def export_record(measured, sizes, client_runs):
    """export's record: per format its size, accuracy and latency; each format's agreement
    with Keras (parity_with_keras); per client, per file, its accuracy, latency and agreement
    with `transfer predict` on that file (e.g. mediapipe.tflite_int8). client_runs: {predictor
    name: (client, format)}."""
    per_run = ("accuracy", "latency_ms", "agreement")
    accuracy, latency, agreement = (measured[key] for key in per_run)
    record = {
        name: {"size_bytes": size, "accuracy": accuracy[name], "latency_ms": latency[name]}
        for name, size in sizes.items()
    }
    record.update({key: value for key, value in measured.items() if key not in per_run})
    record["parity_with_keras"] = {name: agreement[name] for name in sizes if name in agreement}
    for name, (client, file_format) in client_runs.items():
        figures = {"accuracy": accuracy[name], "latency_ms": latency[name], **agreement[name]}
        record.setdefault(client, {})[file_format] = figures
    return record
