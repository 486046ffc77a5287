"""Atomic writes (``dnc_policy.files``): what every checkpoint, exported model and state
file goes through. Modes follow the umask (a container's non-root user must be able to
read a bind-mounted model); a failed write leaves the old file and no temporary file."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest
import torch
from dnc_policy.files import atomic_write, current_umask

from dnc_policy.runtime import PolicyRuntime
from training import checkpoint as ckpt_io



@pytest.fixture
def umask():
    """Set the process umask for one test, then put the old one back."""
    old = os.umask(0o022)
    os.umask(old)
    yield lambda mask: os.umask(mask)
    os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_files_get_the_mode_open_would_give_them(tmp_path, umask, mask, expected):
    umask(mask)
    assert current_umask() == mask
    p = atomic_write(tmp_path / "a.bin", lambda f: f.write(b"x"))
    assert mode(p) == expected
    ckpt = ckpt_io.atomic_save({"w": torch.zeros(2)}, tmp_path / "c.pt")
    assert mode(ckpt) == expected


def test_state_files_are_readable_by_others_under_the_default_umask(models, tmp_path, umask):
    umask(0o022)
    rt = PolicyRuntime(models("dnc").onnx)
    rt.step(np.zeros(rt.obs_dim, np.float32))
    assert mode(rt.save_state(tmp_path / "state.npz")) == 0o644


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    p = atomic_write(tmp_path / "m.onnx", lambda f: f.write(b"good"))

    def broken(f):
        f.write(b"half")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        atomic_write(p, broken)
    assert p.read_bytes() == b"good"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["m.onnx"]
