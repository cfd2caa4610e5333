"""Benchmarks: each prints one JSON object and runs its baseline in the same invocation."""
