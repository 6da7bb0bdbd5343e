"""How a stage uses the machine: what `runtime` resolves to, the tf.distribute strategy,
and the multi-worker cluster's checks.
"""
