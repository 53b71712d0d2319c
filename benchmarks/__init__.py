"""Heimdall's benchmarks (`make bench`): measured numbers for the bars in docs/design.md (§5), not tests."""
