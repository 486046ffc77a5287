"""training.cue_probe: two T-maze episodes that differ only in the cue, and how much of
each state tensor still differs at every step."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from training import cue_probe
from training.checkpoint import load_policy
from training.cue_probe import cue_observations, probe



pytestmark = pytest.mark.usefixtures("one_thread")

def test_the_two_episodes_differ_in_the_cue_only():
    obs, turns = cue_observations(12, bump_penalty=0.1)
    assert obs.shape[:2] == (13, 2) and turns == [1, 2]  # LEFT for row 0, RIGHT for row 1
    assert not np.array_equal(obs[0, 0], obs[0, 1])
    np.testing.assert_array_equal(obs[1:, 0], obs[1:, 1])
    assert not np.array_equal(obs[-1, 0], obs[-2, 0])  # the junction looks different


@pytest.mark.parametrize("name", ["dnc", "lstm"])
def test_differences_are_those_of_the_two_episodes_run_apart(models, name):
    """Each step's difference per tensor equals that of the two episodes run one at a
    time at batch 1 (no mixing of the rows), and the junction's probabilities are the
    policy's for the correct turns."""
    m = models(name)
    r = probe(str(m.checkpoint), 20)
    policy, _ = load_policy(m.checkpoint)
    assert r["names"] == [n for n, _ in policy.state_spec]
    obs, turns = cue_observations(20, 0.1)
    runs = []
    with torch.no_grad():
        for row in (0, 1):
            state, reset, states = policy.initial_state(1), torch.ones(1), []
            for o in obs[:, row]:
                out, state = policy(torch.from_numpy(o[None]), state, reset)
                reset = torch.zeros(1)
                states.append([s[0].double() for s in state])
            p = policy.distribution(out).log_prob(torch.tensor([turns[row]])).exp()
            runs.append((states, float(p)))
    for t in range(len(obs)):
        for k in range(len(r["names"])):
            want = float((runs[0][0][t][k] - runs[1][0][t][k]).pow(2).mean().sqrt())
            assert r["diff"][t, k] == pytest.approx(want, rel=1e-5, abs=1e-9), (t, k)
    assert r["correct"] == pytest.approx([runs[0][1], runs[1][1]], abs=1e-6)
    assert r["diff"][0, 0] > 0  # the cue changes the first step's controller state


def test_the_cli_prints_the_table_draws_and_refuses_other_envs(models, tmp_path, capsys):
    png = tmp_path / "cue.png"
    cue_probe.main([str(models("lstm").checkpoint), str(models("dnc").checkpoint), "--length", "15",
                    "--out", str(png)])
    text = capsys.readouterr().out
    assert "correct-turn probability at the junction (step 15)" in text
    assert text.count("RMS difference") == 2 and "read_vectors" in text
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(SystemExit):
        cue_probe.main([str(models("nav").checkpoint)])
    assert "was trained on dnc/MemoryNav-v0, not the T-maze" in capsys.readouterr().err
