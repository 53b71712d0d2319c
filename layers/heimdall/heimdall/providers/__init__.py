"""Provider adapters: each translates the canonical request to one upstream and back."""
