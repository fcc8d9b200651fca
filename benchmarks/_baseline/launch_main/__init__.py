"""tsir's launcher as on main at a0ebd2f (see benchmarks/_baseline/__init__.py)."""
