"""Run directory, Parquet shards, manifest. Every write is atomic: a temporary file, then rename."""
