"""Export the calibrated model for serving and for phones, and measure every format.

Every format is the deployed model (transfer.inference.deployed): the temperature and the
novelty score are inside, so probabilities are calibrated and unknown photos are flagged
alike. The formats are rows of a table (formats.FORMATS: a writer, a runner, a file name);
exporter.export_model writes each and measures each against Keras on the test split's
original files (measure). What each file holds: docs/model.md (The `export` stage).
"""
