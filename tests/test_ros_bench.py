"""The ROS bench (``dnc_policy_tools.bench``): which observation each of the policy node's
answers acted on, across the observations it dropped (its shadow replay), and the bench
itself under a CPU hog with the node's default queue of one."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from dnc_policy.controller import PolicyController
from dnc_policy.runtime import PolicyRuntime
from dnc_policy.settings import parse_policy_settings
from dnc_policy_tools import bench
from exported import FEW, train_and_export

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def nav_dnc(tmp_path_factory) -> Path:
    """A small DNC with a Box action (MemoryNav), a few updates, exported: continuous
    actions identify the observation a tick acted on."""
    return train_and_export(
        ["core=dnc", "core_config={hidden_size: 16, memory_slots: 8, word_size: 8, "
         "read_heads: 1}", "env=dnc/MemoryNav-v0", "env_kwargs.max_steps=40"] + FEW,
        tmp_path_factory.mktemp("nav_dnc"), "nav_dnc.onnx")[1]


def node_chunks(model: Path, chunks: int, n: int, seed: int = 0):
    """What the policy node does in the bench, without DDS: its controller (the node's
    settings as the bench starts it), a memory reset before each chunk of ``n``
    observations (the bench's ~/reset_memory), about 30% of them dropped at random.
    Yields ``(acted-on indices, answered action bytes, the runtime's buffer set at the
    chunk's start)``."""
    settings = parse_policy_settings({"model_path": str(model), "obs_timeout_ms": 0.0,
                                      "threads": 1})
    c = PolicyController(settings, time.monotonic())
    c.activate(time.monotonic())
    msgs = bench.observation_messages(c.runtime.obs_dim)
    rng = np.random.default_rng(seed)
    for _ in range(chunks):
        c.request_reset()
        start = c.runtime.buffer_set
        acted = [i for i in range(n) if rng.random() > 0.3]
        answers = [c.on_observation(msgs[i % len(msgs)].data, time.monotonic()).action.tobytes()
                   for i in acted]
        yield acted, answers, start


def test_the_shadow_pairs_every_answer_with_its_observation_across_drops(nav_dnc):
    """Chunks starting on both of the runtime's buffer sets (the node's parity is not
    the shadow's): every answer pairs with exactly the observation the node acted on."""
    shadow = bench.ShadowPolicy(str(nav_dnc), bench.observation_messages(
        PolicyRuntime(nav_dnc).obs_dim))
    assert shadow.exact
    starts = set()
    for acted, answers, start in node_chunks(nav_dnc, 6, 600):
        starts.add(start)
        assert len(acted) < 600 and shadow.pair(answers, 600) == acted
    assert starts == {0, 1}


class SetDependentRuntime:
    """A stand-in for PolicyRuntime whose action depends on which of its two state buffer
    sets it steps from, as onnxruntime's last bit may (on some machines, not all): it
    keeps the same set bookkeeping (a step, an undo and a reset each switch sets)."""

    def __init__(self, start: int):
        self.buffer_set, self.state, self._before = start, 0.0, None

    def reset(self) -> None:
        self.state, self.buffer_set = 0.0, 1 - self.buffer_set

    def step(self, obs, reset=False, out=None, checked=False) -> np.ndarray:
        self._before = (self.state, self.buffer_set)
        self.state = (0.0 if reset else self.state) * 0.5 + float(obs.sum())
        self.buffer_set = 1 - self.buffer_set
        np.copyto(out, self.state + 1e-3 * self.buffer_set)
        return out

    def undo_step(self) -> None:
        self.state, self.buffer_set = self._before


def test_the_shadow_follows_the_nodes_buffer_set_whichever_it_starts_on(nav_dnc):
    """Deterministic, whatever onnxruntime does here: answers from a runtime whose
    outputs depend on its buffer set pair exactly from either starting set."""
    msgs = bench.observation_messages(3)
    obs = [np.asarray(m.data, np.float32)[None] for m in msgs]
    rng = np.random.default_rng(1)
    for node_start in (0, 1):
        node = SetDependentRuntime(node_start)
        out = np.zeros((1, 1), np.float32)
        acted = [i for i in range(300) if rng.random() > 0.3]
        answers = [node.step(obs[i % len(obs)], reset=(n == 0), out=out).tobytes()
                   for n, i in enumerate(acted)]
        shadow = bench.ShadowPolicy(str(nav_dnc), msgs)
        shadow.rt, shadow._action = SetDependentRuntime(0), np.zeros((1, 1), np.float32)
        assert shadow.pair(answers, 300) == acted, shadow.failure


def test_the_shadow_refuses_an_answer_no_observation_gives(nav_dnc):
    shadow = bench.ShadowPolicy(str(nav_dnc), bench.observation_messages(
        PolicyRuntime(nav_dnc).obs_dim), window=50)
    acted, answers, _ = next(node_chunks(nav_dnc, 1, 300))
    bad = np.frombuffer(answers[40], np.float32) + np.float32(1e-3)
    answers[40] = bad.astype(np.float32).tobytes()
    assert shadow.pair(answers, 300) is None
    assert shadow.failure.startswith(f"answer 40 of {len(answers)} matches none of "
                                     f"observations {acted[39] + 1}..")


def test_the_shadow_does_not_claim_to_pair_a_discrete_action(models):
    """Discrete actions repeat across observations: the bench pairs them in order only."""
    m = models("dnc")
    assert not bench.ShadowPolicy(str(m.onnx), bench.observation_messages(
        PolicyRuntime(m.onnx).obs_dim)).exact


def test_the_buffer_set_switches_with_each_tick_undo_and_reset(nav_dnc):
    rt = PolicyRuntime(nav_dnc, threads=1)
    obs = np.zeros(rt.obs_dim, np.float32)
    assert rt.buffer_set == 0
    rt.step(obs)
    assert rt.buffer_set == 1
    rt.undo_step()
    assert rt.buffer_set == 0
    rt.reset()
    assert rt.buffer_set == 1


def test_the_bench_pairs_the_policy_nodes_answers_under_a_cpu_hog(nav_dnc, tmp_path):
    """The real bench: both nodes as processes over DDS, one CPU hog, queue depth 1 (the
    node's default). Every chunk of the policy node is paired by its shadow, so its
    round trips exist although it dropped observations: each unanswered observation is
    one it dropped, each answer has a round trip."""
    out = bench.main([str(nav_dnc), "--duration", "1", "--chunk", "0.5", "--hog", "1",
                      "--depth", "1", "--idle", "0", "--executor", "events",
                      "--json", str(tmp_path / "bench.json")])
    pol, echo = out["policy"], out["echo"]
    assert pol["pairing"] == "shadow" and echo["pairing"] == "content"
    assert pol["paired_chunks"] == pol["chunks"] == 2, pol["unpaired_why"]
    assert pol["ticks"] == 1000 and 0 < pol["answered"] <= 1000
    assert pol["dropped"] == pol["ticks"] - pol["answered"]
    assert 0 < pol["p50_us"] <= pol["p99_us"] < 1e6 and np.isfinite(out["p50_ratio"])
    assert {"p50_within_2x_echo_under_load", "p99_within_2x_echo_under_load"} <= set(
        out["targets"])
