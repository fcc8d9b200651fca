"""docs/tilelang_coverage.md is what scripts/tilelang_coverage.py generates from the name list."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _script():
    spec = importlib.util.spec_from_file_location(
        "tilelang_coverage", ROOT / "scripts" / "tilelang_coverage.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_coverage_table_is_current():
    assert (ROOT / "docs" / "tilelang_coverage.md").read_text() == _script().render(), (
        "docs/tilelang_coverage.md is stale: run python scripts/tilelang_coverage.py"
    )


def test_every_listed_name_is_classified_and_missing_ones_raise():
    from tsir.compat.tilelang import language
    from tsir.compat.tilelang.missing import MISSING, MissingFeature, tilelang_names

    for name in tilelang_names():
        if name in language.PRESENT or name in language.DIFFERENT:
            assert hasattr(language, name), name
        else:
            assert name in MISSING
            try:
                getattr(language, name)
            except MissingFeature as e:
                assert name in str(e)
            else:
                raise AssertionError(f"T.{name} should raise")
