"""The fuzzer's own parts: numerics of the numpy models, the strategy, the program texts."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from fuzzlib.numerics import cast, load_tile, rnd, store_tile
from fuzzlib.strategies import FAMILIES, program_for_seed, programs
from hypothesis import HealthCheck, given, settings

import tsir


def test_bfloat16_rounding_matches_ml_dtypes() -> None:
    rng = np.random.default_rng(0)
    x = np.concatenate(
        [rng.normal(size=1000) * 10.0 ** rng.integers(-8, 8, 1000), [0.0, -0.0, 1e38, -3.0]]
    )
    want = x.astype(np.float32).astype(ml_dtypes.bfloat16).astype(np.float64)
    np.testing.assert_array_equal(rnd(x, "bfloat16"), want)


def test_float_to_int_cast_truncates_toward_zero() -> None:
    np.testing.assert_array_equal(cast(np.array([-1.5, -0.5, 0.5, 2.99]), "int32"), [-1, 0, 0, 2])


def test_tile_copies_zero_fill_loads_and_skip_stores_outside() -> None:
    a = np.arange(12.0).reshape(3, 4)
    t = load_tile(a, (2, 2), (2, 3))
    np.testing.assert_array_equal(t, [[10, 11, 0], [0, 0, 0]])
    store_tile(a, (2, 3), np.full((2, 2), -1.0))
    assert a[2, 3] == -1 and (a[:2] == np.arange(8.0).reshape(2, 4)).all()


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_each_family_writes_programs_that_build_and_have_a_reference(family: str) -> None:
    """Programs of a family build (or, for `misuse`, are meant to fail) and their references run."""
    for seed in range(8):
        prog = program_for_seed(seed, (family,))
        assert prog.family == family
        inputs = prog.make_inputs()
        if prog.expect_error is None:
            try:
                prog.build()
            except tsir.TSIRError:
                pass  # a refusal is the compiler's finding, classified by the harness
            out = prog.expected(inputs)
            assert set(out) == set(prog.outputs)
        assert "def kernel():" in prog.module_source()


@settings(max_examples=12, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(programs())
def test_hypothesis_strategy_draws_well_formed_programs(prog) -> None:
    inputs = prog.make_inputs()
    if prog.expect_error is None:
        out = prog.expected(inputs)
        for name, arr in out.items():
            assert arr.shape == inputs[name].shape


def test_every_known_class_has_its_xfail_regression_test() -> None:
    """A class in KNOWN is excused in the CI budget only while its regression test reproduces it;
    and every xfail reason in regressions/ names a known class."""
    import pathlib
    import re

    from fuzzlib.classify import KNOWN

    folder = pathlib.Path(__file__).parent / "regressions"
    texts = {p.name: p.read_text() for p in folder.glob("test_regress_*.py")}
    for klass in KNOWN.values():
        assert klass.regression in texts, klass
        assert f'reason="{klass.name}: ' in texts[klass.regression], klass.name
    for name, text in texts.items():
        for reason in re.findall(r'reason="([\w-]+): ', text):
            assert reason in KNOWN, (name, reason)
