"""Baseline: sb3-contrib's RecurrentPPO on one of our envs, measured as our trainers are.

    python -m venv /tmp/sb3venv && /tmp/sb3venv/bin/pip install torch==2.13.0 sb3-contrib
    PYTHONPATH=. /tmp/sb3venv/bin/python -m training.baseline_sb3 --seeds 1,2,3 \\
        --total-steps 50000 --env-kwargs '{"length": 10, "bump_penalty": 0.1}'

sb3-contrib is a baseline, never a dependency of this project: run this in a separate
virtual environment (above). Settings are the RL-Zoo's for RecurrentPPO on POMDPs, as
issue 11 names them: LSTM 64 (separate actor and critic LSTMs, sb3-contrib's default),
16 envs, n_steps 32, batch 256, 20 epochs, gamma 0.98, GAE lambda 0.98, lr 1e-3 and clip
0.2 both linear to 0, no entropy bonus. Per seed it prints the episodes (and env steps)
at which the rolling success over the last 100 finished episodes first reaches the
threshold (with at least 100 episodes), the lowest rolling success after that, the
final rolling success and the final rolling return (mean over the last 100 episodes:
what an env without ``is_success``, such as POPGym's, is compared by), env steps/s of
the whole run (``torch`` threads as given) and the steady rate after the first
``--warmup-updates`` updates (``steady_steps_per_s``, as ``training.bench`` times our
trainers: set-up and the first updates not counted). The same definitions as ``training.compare``.
``--out FILE.jsonl`` also writes the lines there (for ``training.compare --baseline``).
POPGym: ``--env popgym:popgym-RepeatPreviousEasy-v0 --env-kwargs '{}'`` (``popgym`` in the
same venv). ``--normalize`` wraps the envs in sb3's ``VecNormalize`` (observations and
rewards, gamma 0.98), as the RL Zoo's ``normalize: True`` does for CartPoleNoVel; the
returns reported are still the env's (sb3's Monitor sits inside it). ``--shared-lstm``
gives actor and critic one LSTM (``shared_lstm=True, enable_critic_lstm=False``), as our
``ActorCritic`` has: an ablation of the separate critic LSTM.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import deque

import gymnasium as gym
import torch

import sim  # noqa: F401  (registers the dnc/ envs)


def one_hot_obs(env: gym.Env) -> gym.Env:
    """A MultiDiscrete (or Tuple) observation as one flat one-hot Box, the encoding our
    trainers' ObsFlattener gives it: sb3 2.x sizes its MultiDiscrete features with a numpy
    int, which torch's LSTM refuses (POPGym's CountRecall). Box and Discrete pass as they
    are (sb3 one-hot encodes Discrete itself)."""
    from gymnasium import spaces
    if isinstance(env.observation_space, (spaces.MultiDiscrete, spaces.Tuple)):
        return gym.wrappers.FlattenObservation(env)
    return env


def steady_rate(marks: list[tuple[int, float]], warmup: int) -> float | None:
    """Env steps/s from the end of update ``warmup`` to the end of the run. ``marks`` holds
    (env steps, time) at the start and after each update; ``None`` when no update is
    left past the warm-up to time. ``training.bench`` passes its ``--warmup`` + 1, the
    update from whose end its own ``steady_rate`` times our runs."""
    if len(marks) < warmup + 2:
        return None
    (s0, t0), (s1, t1) = marks[warmup], marks[-1]
    return (s1 - s0) / (t1 - t0)


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="dnc/TMaze-v0")
    p.add_argument("--env-kwargs", default='{"length": 10, "bump_penalty": 0.1}')
    p.add_argument("--seeds", default="1,2,3")
    p.add_argument("--total-steps", type=int, default=50_000)
    p.add_argument("--threshold", type=float, default=0.9)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", help="also write the result lines to this .jsonl file")
    p.add_argument("--normalize", action="store_true",
                   help="VecNormalize the envs (observations and rewards)")
    p.add_argument("--shared-lstm", action="store_true",
                   help="one LSTM for actor and critic (sb3-contrib's default has two)")
    p.add_argument("--warmup-updates", type=int, default=2,
                   help="updates (rollout + train) not counted in steady_steps_per_s")
    a = p.parse_args(argv)
    from sb3_contrib import RecurrentPPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    torch.set_num_threads(a.threads)
    kwargs = json.loads(a.env_kwargs)

    class Successes(BaseCallback):
        def __init__(self):
            super().__init__()
            self.window, self.returns = deque(maxlen=100), deque(maxlen=100)
            self.episodes, self.curve, self.has_success = 0, [], False
            self.marks = []  # (env steps, time) at each rollout's start: an update's end

        def _on_rollout_start(self) -> None:
            self.marks.append((self.num_timesteps, time.perf_counter()))

        def _on_step(self) -> bool:
            for done, info in zip(self.locals["dones"], self.locals["infos"]):
                if done:
                    self.episodes += 1
                    self.has_success |= "is_success" in info
                    self.window.append(float(info.get("is_success", False)))
                    self.returns.append(float(info["episode"]["r"]))  # sb3's Monitor
                    rate = sum(self.window) / len(self.window)
                    self.curve.append((self.episodes, self.num_timesteps, rate))
            return True

    def linear(x0):
        return lambda progress: x0 * progress  # progress_remaining: 1 -> 0

    results = []
    for seed in (int(s) for s in a.seeds.split(",")):
        envs = make_vec_env(lambda: one_hot_obs(gym.make(a.env, **kwargs)), n_envs=16,
                            seed=seed)
        if a.normalize:
            envs = VecNormalize(envs, gamma=0.98)
        model = RecurrentPPO("MlpLstmPolicy", envs, n_steps=32, batch_size=256, n_epochs=20,
                             gamma=0.98, gae_lambda=0.98, learning_rate=linear(1e-3),
                             clip_range=linear(0.2), ent_coef=0.0, seed=seed, verbose=0,
                             policy_kwargs={"lstm_hidden_size": 64, "n_lstm_layers": 1,
                                            "shared_lstm": a.shared_lstm,
                                            "enable_critic_lstm": not a.shared_lstm},
                             device="cpu")
        cb = Successes()
        start = time.perf_counter()
        model.learn(a.total_steps, callback=cb)
        end = time.perf_counter()
        seconds = end - start
        cb.marks.append((model.num_timesteps, end))
        reached = next(((e, s) for e, s, r in cb.curve if e >= 100 and r >= a.threshold), None)
        after = [r for e, s, r in cb.curve if reached and e >= reached[0]]
        params = sum(p.numel() for p in model.policy.parameters())
        res = {"seed": seed, "episodes_to_threshold": reached[0] if reached else None,
               "steps_to_threshold": reached[1] if reached else None,
               "min_after": min(after) if after else None,
               "final_success": cb.curve[-1][2] if cb.curve and cb.has_success else None,
               "final_return": sum(cb.returns) / len(cb.returns) if cb.returns else None,
               "env": a.env, "env_kwargs": kwargs, "normalize": a.normalize,
               "shared_lstm": a.shared_lstm,
               "episodes": cb.episodes, "steps": model.num_timesteps,
               "steps_per_s": model.num_timesteps / seconds,
               "steady_steps_per_s": steady_rate(cb.marks, a.warmup_updates),
               "parameters": params}
        results.append(res)
        print(json.dumps(res), flush=True)
        if a.out:
            with open(a.out, "a") as f:
                f.write(json.dumps(res) + "\n")
        envs.close()
    return results


if __name__ == "__main__":
    main()
