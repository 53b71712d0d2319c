"""Gateway governance: rate limits and budgets per key, usage records, and the transcript cache.

Kept free of imports here: ``heimdall.config`` reads ``governance.schema``, and the rest needs the config.
"""
