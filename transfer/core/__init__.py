"""What every layer uses: errors, atomic file writing, progress, quiet TensorFlow logs, the
private cache, where every output lives (artifacts), the stage records and the Task (two
classes or K). Imports nothing else of the package.
"""
