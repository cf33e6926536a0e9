"""Benchmarks: extraction/dedup quality (bench.quality) and pipeline speed (bench.pipeline)."""
