"""Integer-grid binning against numpy's searchsorted on the edges it reports."""

from __future__ import annotations

import duckdb
import ibis
import numpy as np
import pytest

from toolkit.diagnose._binning import fine_histogram, integer_grid
from toolkit.diagnose._engine import quiet_ibis


def engine_counts(values: np.ndarray, edges: np.ndarray, bound: float | None,
                  atoms: np.ndarray | None = None, *, points: bool = False):
    """Counts per bin from DuckDB (through ibis, as the profile runs it) and the edges used
    (and with ``points`` the point-bin flags)."""
    con = duckdb.connect()
    # through a list, not pandas (whose scan reads NaN as NULL)
    con.execute("CREATE TABLE t AS SELECT unnest($v::DOUBLE[]) AS x",
                {"v": [float(v) for v in values]})
    with quiet_ibis():
        backend = ibis.duckdb.from_connection(con)
        table = backend.table("t")
        expr, used, flags = fine_histogram(table.x, edges, bound=bound, atoms=atoms)
        counts = backend.execute(table.aggregate(h=expr))["h"].iloc[0]
    out = np.zeros(len(used) + 1)
    if counts is not None:
        out[:len(counts)] = np.asarray(counts, dtype=float)
    return (out, used, flags) if points else (out, used)


def numpy_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Right-closed bins (e[k-1], e[k]] and an overflow bin; NaN above everything, as DuckDB
    orders it."""
    x = np.asarray(values, dtype=float)
    index = np.where(np.isnan(x), len(edges), np.searchsorted(edges, x, side="left"))
    return np.bincount(index, minlength=len(edges) + 1).astype(float)


def adversarial(edges: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Values on, just above and just below every edge, plus random ones and signed zeros."""
    near = np.concatenate([edges, np.nextafter(edges, np.inf), np.nextafter(edges, -np.inf)])
    spread = rng.uniform(edges.min() - 1, edges.max() + 1, 500)
    return np.concatenate([near, spread, [0.0, -0.0]])


@pytest.mark.parametrize("edges", [
    np.array([-2.5, -1.0, -0.1, 0.0, 0.1, 0.555, 1.0, 3.0]),
    np.linspace(1e9 - 5, 1e9 + 5, 41),              # epoch-like, small spread
    np.array([1e-12, 2e-12, 5e-12, 1e-9]),          # tiny magnitudes
    np.array([0.29, 0.48, 0.67, 1414.76, 334308.38]),  # a heavy tail
])
@pytest.mark.parametrize("bound", [None, "max"], ids=["clamped", "bounded"])
def test_counts_are_those_of_the_reported_edges(edges, bound):
    rng = np.random.default_rng(3)
    values = adversarial(edges, rng)
    limit = float(np.abs(values).max()) if bound == "max" else None
    counts, used = engine_counts(values, edges, limit)
    assert integer_grid(edges, limit or 0.0) is not None  # the integer path was taken
    np.testing.assert_array_equal(counts, numpy_counts(values, used))
    # the edges moved up by less than 2**-60 of the largest magnitude on the grid
    largest = max(np.abs(edges).max(), limit or 0.0)
    assert np.all(used >= edges) and np.all(used - edges <= largest * 2.0**-59)


def test_values_on_an_edge_stay_in_the_bin_below_it():
    edges = np.array([0.1, 0.2, 0.3])
    counts, used = engine_counts(np.array([0.1, 0.2, 0.3, 0.30000000000000004]), edges, 0.4)
    np.testing.assert_array_equal(used, edges)  # decimals that land exactly on the grid
    np.testing.assert_array_equal(counts, [1, 1, 1, 1])


def test_nan_infinities_and_far_values_are_clamped_into_the_right_bins():
    edges = np.array([-1.0, 0.0, 1.0])
    values = np.array([np.nan, np.inf, -np.inf, 1e300, -1e300, 0.5])
    counts, used = engine_counts(values, edges, None)
    # NaN, +inf and 1e300 above the last edge; -inf and -1e300 at or below the first
    np.testing.assert_array_equal(counts, [2, 0, 1, 3])
    np.testing.assert_array_equal(counts, numpy_counts(values, used))


def test_null_values_are_not_counted():
    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT * FROM (VALUES (0.5), (NULL), (2.0), (NULL)) v(x)")
    with quiet_ibis():
        backend = ibis.duckdb.from_connection(con)
        table = backend.table("t")
    for bound in (None, 2.0):
        expr, _, _ = fine_histogram(table.x, np.array([0.0, 1.0]), bound=bound)
        with quiet_ibis():
            assert list(backend.execute(table.aggregate(h=expr))["h"].iloc[0]) == [0, 1, 1]


def test_no_grid_beyond_two_to_the_61_or_when_rounding_would_merge_edges():
    assert integer_grid(np.array([0.0, 3e18])) is None
    assert integer_grid(np.array([0.0, 1.0]), bound=3e18) is None
    assert integer_grid(np.array([1e-20, 2e-20, 1e5])) is None   # both round up to one step
    assert integer_grid(np.array([0.0, 1.0]), bound=float("nan")) is None
    # the fallback bins the doubles themselves, with the same counts
    edges = np.array([1e-20, 2e-20, 1e5])
    values = np.array([1e-20, 1.5e-20, 2e-20, 3e-20, 5.0, 2e5])
    counts, used = engine_counts(values, edges, None)
    np.testing.assert_array_equal(used, edges)
    np.testing.assert_array_equal(counts, [1, 2, 2, 1])


def test_infinite_edges_are_refused():
    table = ibis.table({"x": "float64"}, name="t")
    with pytest.raises(ValueError, match="finite"):
        fine_histogram(table.x, np.array([0.0, np.inf]))


@pytest.mark.parametrize("edges, atoms", [
    (np.array([0.0, 1.0, 2.0, 3.0, 7.0]), np.array([0.0, 2.0, 3.0])),      # on the grid, exact
    (np.array([0.1, 0.3, 0.7, 2.0**55]), np.array([0.1, 0.3])),            # 0.1 off the grid
    (np.array([2.0**60, 2.0**60 + 2.0**9]), np.array([2.0**60 + 2.0**9])),  # m - 1 above 2**53
    (np.array([-1.0, 0.0, 1e300]), np.array([-1.0, 0.0])),                 # DOUBLE edges
])
def test_atoms_get_point_bins_of_their_own(edges, atoms):
    rng = np.random.default_rng(5)
    values = np.concatenate([adversarial(edges, rng), np.repeat(atoms, 7)])
    counts, used, flags = engine_counts(values, edges, float(np.abs(values).max()), atoms,
                                        points=True)
    np.testing.assert_array_equal(counts, numpy_counts(values, used))
    assert np.all(np.diff(used) > 0) and len(flags) == len(used) + 1
    # one point bin per atom, (edge just below, edge at the atom], holding the atom's values
    assert flags.sum() == len(atoms)
    largest = float(np.abs(values).max())
    for atom in atoms:
        k = int(np.searchsorted(used, atom))  # the atom's edge: rounded up on the grid
        # the partner lies a grid step below the atom (or a double's step, where the grid is
        # finer than the doubles): the bin holds the atom's values and none further away
        step = max(np.spacing(atom), largest * 2.0**-59)
        assert flags[k] and 0 < atom - used[k - 1] <= step
        inside = values[(values > used[k - 1]) & (values <= used[k])]
        assert counts[k] == inside.size >= np.sum(values == atom) >= 7
        assert np.all(np.abs(inside - atom) <= step)


def test_point_bins_make_the_ks_bound_tight_for_a_discrete_feature():
    from scipy import stats as sps

    from toolkit.diagnose._stats import ks_from_counts
    rng = np.random.default_rng(11)
    b, i = rng.poisson(4.0, 5000).astype(float), rng.poisson(4.6, 4000).astype(float)
    edges = np.unique(np.quantile(b, np.linspace(0.01, 0.99, 99)))
    atoms = edges  # every quantile of a Poisson sample is a repeated value
    _, used, flags = engine_counts(b, edges, 20.0, atoms, points=True)
    counts_b = numpy_counts(b, used)
    counts_i = numpy_counts(i, used)
    d = sps.ks_2samp(b, i).statistic
    loose = ks_from_counts(counts_b, counts_i)
    tight = ks_from_counts(counts_b, counts_i, flags)
    assert loose[1] - loose[0] > 0.1  # without point bins the bound is wide
    assert abs(tight[0] - d) < 1e-9 and abs(tight[1] - d) < 1e-9
