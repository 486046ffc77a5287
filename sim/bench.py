"""Raw environment throughput: ``python -m sim.bench [--steps N] [--repeats R]``.

For every ``dnc/`` environment: one process, one env, no vectorisation, made with
``gymnasium.make(id, disable_env_checker=True)`` (so the passive env checker is off but
the registered wrappers stay, as a trainer would use them); actions are pre-sampled from
the seeded action space (a uniform random policy), episodes are reset when they end and
the reset time is counted. The printed rate is the median of ``repeats`` timed runs.
"""

from __future__ import annotations

import argparse
import statistics
import time

import gymnasium

import sim

# Steps/s each env must reach (None: reported only).
TARGETS = {
    "dnc/Copy-v0": 50_000,
    "dnc/RepeatCopy-v0": 50_000,
    "dnc/TMaze-v0": 50_000,
    "dnc/ProceduralMaze-v0": 50_000,
    "dnc/MemoryNav-v0": 20_000,
    "dnc/CartPolePO-v0": None,
}


def measure(env_id: str, steps: int, repeats: int, seed: int = 0) -> float:
    """Median env steps per second of ``repeats`` runs of ``steps`` random-action steps."""
    env = gymnasium.make(env_id, disable_env_checker=True)
    env.action_space.seed(seed)
    actions = [env.action_space.sample() for _ in range(min(steps, 4096))]
    n_actions = len(actions)
    rates = []
    env.reset(seed=seed)
    for _ in range(repeats):
        step, reset = env.step, env.reset
        start = time.perf_counter()
        for i in range(steps):
            _, _, terminated, truncated, _ = step(actions[i % n_actions])
            if terminated or truncated:
                reset()
        rates.append(steps / (time.perf_counter() - start))
    env.close()
    return statistics.median(rates)


def run(steps: int = 20_000, repeats: int = 5) -> list[tuple[str, float, int | None, bool]]:
    """Benchmark every registered ``dnc/`` env; return ``(id, steps/s, target, passed)`` rows."""
    rows = []
    for env_id in sim.ENV_IDS:
        rate = measure(env_id, steps, repeats)
        target = TARGETS.get(env_id)
        rows.append((env_id, rate, target, target is None or rate >= target))
    return rows


def format_table(rows, steps: int, repeats: int) -> str:
    lines = [
        (f"sim.bench: raw env steps/s, median of {repeats} x {steps} steps, 1 process, "
         "random pre-sampled actions,"),
        ("gymnasium.make(id, disable_env_checker=True) (registered wrappers kept, "
         "passive checker off)"),
        f"{'env id':<24}{'steps/s':>12} {'target':>10}  result",
    ]
    for env_id, rate, target, passed in rows:
        target_text = "-" if target is None else f"{target:,}"
        result = "info" if target is None else ("PASS" if passed else "FAIL")
        lines.append(f"{env_id:<24}{rate:>12,.0f} {target_text:>10}  {result}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000, help="steps per timed run")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per env (median)")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.repeats < 1:
        parser.error("--steps and --repeats must be >= 1")
    rows = run(args.steps, args.repeats)
    print(format_table(rows, args.steps, args.repeats))
    return 0 if all(passed for *_, passed in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
