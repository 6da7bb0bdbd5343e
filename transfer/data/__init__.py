"""Photos in, arrays out: decoding, the prepared shards, the exclusions a person made,
the sources photos come from (sources/), the cached features, and neighbours in feature space.
"""
