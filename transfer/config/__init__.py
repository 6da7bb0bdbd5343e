"""params.yaml: its schema (every key, what it may be, the defaults) and its loading. The
names a key may take come from the registries that own them.
"""
