"""Heimdall's benchmarks (`make bench`): measured numbers for the bars in DESIGN §6, not tests."""
