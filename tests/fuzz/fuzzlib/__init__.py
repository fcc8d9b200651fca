"""The random tile-program generator, its numpy models and the differential harness (see
tests/fuzz/README.md)."""
