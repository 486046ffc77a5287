"""The benchmark runs and prints one row per env with its target."""

import sim
from sim import bench


def test_bench_prints_a_row_per_env(capsys):
    code = bench.main(["--steps", "300", "--repeats", "2"])
    out = capsys.readouterr().out
    assert "disable_env_checker=True" in out and "median of 2 x 300 steps" in out
    for env_id in sim.ENV_IDS:
        row = next(line for line in out.splitlines() if line.startswith(env_id))
        assert row.split()[-1] in {"PASS", "FAIL", "info"}
    assert code in (0, 1)


def test_measure_returns_a_positive_rate():
    assert bench.measure("dnc/TMaze-v0", steps=500, repeats=3) > 1000
    assert set(bench.TARGETS) == set(sim.ENV_IDS)
