"""Drawing one recorded episode (the dict :func:`training.visualize.record_episode`
returns): :func:`plot_memory` / :func:`memory_figure`, the whole episode as one picture
(observation, action, reward and value, then the core's memory or units over the steps),
and :func:`write_gif`, one frame per step. What a recording holds decides the panels:
:func:`memory_kind` (a DNC, an NTM, or no external memory: an LSTM or GRU core, whose
:func:`unit_states` are drawn instead). ``python -m training.visualize`` records and
calls these; matplotlib is imported only when something is drawn."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np


# --------------------------------------------------------------------------------------
# What a recording shows
# --------------------------------------------------------------------------------------
def memory_kind(rec: dict) -> str | None:
    """``"dnc"`` (write and read weights, usage, links), ``"ntm"`` (write and read
    weights, the heads' shift distributions; no usage or links) or None (no external
    memory: an LSTM or GRU core)."""
    if all(f"state.{k}" in rec for k in ("write_weights", "read_weights", "usage", "link")):
        return "dnc"
    if all(k in rec for k in ("state.write_weights", "state.read_weights", "state.memory",
                              "ntm.write_shift", "ntm.read_shift")):
        return "ntm"
    return None


def has_memory(rec: dict) -> bool:
    """Whether the core has an external memory (a DNC or an NTM)."""
    return memory_kind(rec) is not None


# What a core without external memory shows: its hidden state h and, for an LSTM, its
# cell state c (a GRU has h only).
_UNIT_STATES = {"h": "hidden state h", "c": "cell state c"}


def unit_states(rec: dict) -> list[str]:
    """The recorded per-unit state names of a memoryless core, in drawing order."""
    return [n for n in _UNIT_STATES if f"state.{n}" in rec]


def _core_label(rec: dict) -> str:
    return str(rec["meta"]["core"].get("kind", "?")).upper()


# --------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------
def _title(rec: dict) -> str:
    m = rec["meta"]
    core = m["core"]
    cfg = core.get("config", {})
    if core.get("kind") == "dnc":
        desc = (f"DNC (N={cfg.get('memory_slots')} slots, W={cfg.get('word_size')}, "
                f"R={cfg.get('read_heads')} read head{'s' if cfg.get('read_heads') != 1 else ''}"
                f", H={cfg.get('hidden_size')})")
    elif core.get("kind") == "ntm":
        desc = (f"NTM (N={cfg.get('memory_slots')} slots, W={cfg.get('word_size')}, "
                f"R={cfg.get('read_heads')} read head{'s' if cfg.get('read_heads') != 1 else ''}"
                f", S={cfg.get('shift_range')} shifts, H={cfg.get('hidden_size')})")
    else:
        desc = f"{str(core.get('kind', '?')).upper()} (H={cfg.get('hidden_size')})"
    success = {None: "n/a", True: "yes", False: "no"}[m["success"]]
    kw = ", ".join(f"{k}={v}" for k, v in m["env_kwargs"].items())
    end = "terminated" if m["terminated"] else ("truncated" if m["truncated"] else "stopped")
    return (f"{m['env_id']}({kw}), seed {m['seed']}: return {m['return']:.2f}, "
            f"success {success}, {m['length']} steps ({end})\n"
            f"{desc} from {Path(m['model']).name} ({m['source']}), "
            f"{'deterministic' if m['deterministic'] else 'sampled'} actions")


def _probs(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


def _index_ticks(ax, n: int) -> None:
    """A tick per row (slot, unit, obs index) while they fit, every k-th beyond."""
    ax.set_yticks(range(0, n, max(1, -(-n // 16))))
    ax.tick_params(axis="y", labelsize=6)


def _head_colour(i: int):
    """The colour of read head ``i`` (the DNC's read-weight bars), -1 for the write head."""
    import matplotlib.pyplot as plt

    cmap = plt.get_cmap("tab10")
    return cmap(1) if i < 0 else cmap(i % 10 if i % 10 != 1 else 3)


def _shift_ticks(ax, num_shifts: int) -> None:
    """Label the rows of a shift heatmap with their offsets (−1, +0, +1, ...)."""
    from dnc_core.addressing import shift_offsets

    ax.set_yticks(range(num_shifts))
    ax.set_yticklabels([f"{o:+d}" for o in shift_offsets(num_shifts)], fontsize=7)


def _grouped_bars(ax, x: np.ndarray, heights, colours, labels) -> list:
    """One bar per ``x`` for each series, side by side (0.8 wide in all); the bar
    containers, in series order."""
    k = len(heights)
    width = 0.8 / k
    return [ax.bar(x + (j - (k - 1) / 2) * width, h, width, color=c, label=lab)
            for j, (h, c, lab) in enumerate(zip(heights, colours, labels))]


def _ntm_shifts(rec: dict) -> list[tuple[str, str, np.ndarray]]:
    """``(row name, head label, shift distributions [T, S])`` of the write head, then of
    each read head."""
    r_heads = rec["state.read_weights"].shape[1]
    shifts = [("write", "write head", rec["ntm.write_shift"])]
    shifts += [(f"read{i}", f"read head {i}", rec["ntm.read_shift"][:, i])
               for i in range(r_heads)]
    return shifts


# --------------------------------------------------------------------------------------
# The picture
# --------------------------------------------------------------------------------------
def plot_memory(rec: dict, path: str | Path) -> Path:
    """The episode as one PNG (see :mod:`training.visualize`)."""
    import matplotlib.pyplot as plt

    fig = memory_figure(rec)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def memory_figure(rec: dict):
    """The figure :func:`plot_memory` saves (the caller closes it). Each panel's axes
    carry a ``gid`` naming what they draw (``"write"``, ``"read0"``, ``"write_shift"``,
    ``"read0_shift"``, ``"usage"``, ``"link"``, ``"memory"``, ``"h"``, ...), so a test
    can read the drawn arrays back."""
    import matplotlib

    matplotlib.use("Agg")
    rows = panel_rows(rec)
    grid = _figure_grid(rec, rows)
    _draw_observation(grid, rec)
    _draw_action(grid, rec)
    _draw_reward(grid, rec)
    kind = memory_kind(rec)
    if kind == "dnc":
        _draw_dnc(grid, rec)
    elif kind == "ntm":
        _draw_ntm(grid, rec)
    else:
        _draw_units(grid, rec)
    _label_steps(grid, rows[-1][0], rec["meta"]["length"])
    grid.fig.suptitle(_title(rec), fontsize=10)
    return grid.fig


def panel_rows(rec: dict) -> list[tuple[str, float]]:
    """The left column of :func:`memory_figure`, top to bottom: ``(name, height ratio)``
    for the observation, the action, the reward, then the core's panels."""
    obs = rec["obs"]
    discrete = "logits" in rec and rec["action"].ndim == 1
    kind = memory_kind(rec)
    rows = [("obs", max(1.2, 0.28 * obs.shape[1]))]
    rows.append(("action", max(1.2, 0.3 * rec["logits"].shape[1]) if discrete else 1.4))
    rows.append(("reward", 1.1))
    if kind == "dnc":
        n = rec["state.usage"].shape[1]
        r_heads = rec["state.read_weights"].shape[1]
        hm = max(1.6, 0.2 * n)
        rows += [("write", hm), ("intensity", 1.1)]
        rows += [(f"read{i}", hm) for i in range(r_heads)]
        rows += [("usage", hm)]
    elif kind == "ntm":
        n = rec["state.write_weights"].shape[1]
        r_heads = rec["state.read_weights"].shape[1]
        hm, hs = max(1.6, 0.2 * n), max(1.0, 0.3 * rec["ntm.write_shift"].shape[1])
        rows += [("write", hm), ("write_shift", hs)]
        for i in range(r_heads):
            rows += [(f"read{i}", hm), (f"read{i}_shift", hs)]
    else:
        units = unit_states(rec)
        hs = rec[f"state.{units[0]}"].shape[1]
        hm = max(1.6, min(5.0, 0.06 * hs))
        rows += [(n, hm) for n in units]
    return rows


class _Grid(NamedTuple):
    """:func:`memory_figure`'s figure: ``axes[name] = (axes, colourbar axes)`` for each
    row of the left column, ``outer`` the figure's grid (``outer[1]``: the right column
    of a memory core), ``extent`` the steps' x range."""

    fig: Any
    outer: Any
    axes: dict[str, tuple[Any, Any]]
    extent: tuple[float, float]


def _figure_grid(rec: dict, rows: list[tuple[str, float]]) -> _Grid:
    """The figure sized for ``rows``, one axes and one colourbar axes per row (sharing
    the step axis), and a right column for a memory core."""
    import matplotlib.pyplot as plt
    from matplotlib.gridspec import GridSpec

    memory = memory_kind(rec) is not None
    ratios = [h for _, h in rows]
    fig_h = 1.6 + 0.62 * sum(ratios)
    fig = plt.figure(figsize=(16 if memory else 11, fig_h), dpi=100)
    outer = GridSpec(1, 2 if memory else 1, figure=fig,
                     width_ratios=[11, 4.6] if memory else [1], wspace=0.16,
                     left=0.06, right=0.96, top=1 - 1.0 / fig_h, bottom=0.55 / fig_h)
    left = outer[0].subgridspec(len(rows), 2, height_ratios=ratios, width_ratios=[40, 0.8],
                                hspace=0.62, wspace=0.03)
    ax0 = None
    axes = {}
    for i, (name, _) in enumerate(rows):
        ax = fig.add_subplot(left[i, 0], sharex=ax0)
        ax.set_gid(name)
        ax0 = ax0 or ax
        axes[name] = (ax, fig.add_subplot(left[i, 1]))
    return _Grid(fig, outer, axes, (-0.5, rec["meta"]["length"] - 0.5))


def heat(grid: _Grid, name: str, arr: np.ndarray, ylabel: str, label: str,
         vmax: float | None = None, cmap: str = "viridis", title: str | None = None):
    """``arr [rows, T]`` as a heatmap over the steps in row ``name`` of ``grid``, from 0
    to ``vmax`` (default: its maximum), with its colourbar; returns the axes."""
    ax, cax = grid.axes[name]
    rows_n = arr.shape[0]
    im = ax.imshow(arr, aspect="auto", interpolation="nearest", cmap=cmap, vmin=0,
                   vmax=vmax if vmax is not None else max(1e-6, float(arr.max())),
                   extent=(*grid.extent, rows_n - 0.5, -0.5))
    ax.set_ylabel(ylabel)
    _index_ticks(ax, rows_n)
    grid.fig.colorbar(im, cax=cax).set_label(label, fontsize=8)
    cax.tick_params(labelsize=7)
    if title:
        ax.set_title(title, fontsize=9, loc="left")
    return ax


def _draw_observation(grid: _Grid, rec: dict) -> None:
    """The flat observation at each step (greys, from min(0, lowest) to max(1, highest))."""
    obs = rec["obs"]
    lo, hi = float(min(0.0, obs.min())), float(max(1.0, obs.max()))
    ax, cax = grid.axes["obs"]
    im = ax.imshow(obs.T, aspect="auto", interpolation="nearest", cmap="Greys", vmin=lo,
                   vmax=hi, extent=(*grid.extent, obs.shape[1] - 0.5, -0.5))
    ax.set_ylabel("obs index")
    _index_ticks(ax, obs.shape[1])
    grid.fig.colorbar(im, cax=cax).set_label("value", fontsize=8)
    cax.tick_params(labelsize=7)
    ax.set_title("observation seen at step t (flattened)", fontsize=9, loc="left")


def _draw_action(grid: _Grid, rec: dict) -> None:
    """Discrete actions: the probabilities and the action taken; else the action values
    (their first 8 dimensions) as step lines."""
    t_len = rec["meta"]["length"]
    steps = np.arange(t_len)
    ax, cax = grid.axes["action"]
    if "logits" in rec and rec["action"].ndim == 1:
        probs = _probs(rec["logits"])
        im = ax.imshow(probs.T, aspect="auto", interpolation="nearest", cmap="Blues", vmin=0,
                       vmax=1, extent=(*grid.extent, probs.shape[1] - 0.5, -0.5))
        ax.plot(steps, rec["action"], "o", color="tab:red", ms=4, label="action taken")
        ax.set_yticks(range(probs.shape[1]))
        ax.tick_params(axis="y", labelsize=7)
        ax.set_ylabel("action")
        grid.fig.colorbar(im, cax=cax).set_label("π(a)", fontsize=8)
        cax.tick_params(labelsize=7)
        ax.legend(loc="upper right", fontsize=7, framealpha=0.8)
        ax.set_title("action probabilities, and the action taken (red)", fontsize=9, loc="left")
    else:
        a = rec["action"].reshape(t_len, -1).astype(np.float64)
        for j in range(min(a.shape[1], 8)):
            ax.step(steps, a[:, j], where="mid", label=f"a[{j}]")
        ax.set_ylabel("action")
        ax.legend(loc="upper right", fontsize=7, ncol=4)
        ax.set_title("action taken", fontsize=9, loc="left")
        cax.axis("off")


def _draw_reward(grid: _Grid, rec: dict) -> None:
    """The reward per step as bars, the value estimate as a line on a second y axis."""
    steps = np.arange(rec["meta"]["length"])
    ax, cax = grid.axes["reward"]
    rew = rec["reward"]
    ax.bar(steps, rew, color=np.where(rew >= 0, "tab:green", "tab:red"), width=0.8)
    ax.axhline(0, color="k", lw=0.5)
    ax.set_ylabel("reward")
    ax2 = ax.twinx()
    ax2.plot(steps, rec["value"], color="tab:purple", lw=1.2, marker=".", ms=3)
    ax2.set_ylabel("value", color="tab:purple", fontsize=8)
    ax2.tick_params(axis="y", labelsize=7, colors="tab:purple")
    ax.set_title("reward per step (bars), value estimate V (line)", fontsize=9, loc="left")
    cax.axis("off")


def _draw_dnc(grid: _Grid, rec: dict) -> None:
    """A DNC's write weights and intensity, each read head's weights and the usage over
    the steps; the link matrix and the memory at the end on the right."""
    ww = rec["state.write_weights"]
    heat(grid, "write", ww.T, "slot", "weight", title="write weights w_t (slot × step)")
    ax, cax = grid.axes["intensity"]
    ax.plot(np.arange(rec["meta"]["length"]), ww.sum(1), color="tab:orange", marker=".",
            ms=4)
    ax.set_ylim(-0.05, 1.05)
    ax.set_ylabel("Σ w")
    ax.set_title("write intensity Σᵢ wᵢ (write gate × how much of the address "
                 "is used; 0 = no write)", fontsize=9, loc="left")
    ax.grid(alpha=0.3)
    cax.axis("off")
    rw = rec["state.read_weights"]
    for i in range(rw.shape[1]):
        heat(grid, f"read{i}", rw[:, i].T, "slot", "weight", cmap="magma",
             title=f"read weights of read head {i} (slot × step)")
    heat(grid, "usage", rec["state.usage"].T, "slot", "usage", vmax=1.0, cmap="cividis",
         title="usage u_t (0 free … 1 in use)")
    _draw_dnc_right(grid, rec)


def _draw_dnc_right(grid: _Grid, rec: dict) -> None:
    """The right column of a DNC: the link matrix and the memory at the end."""
    t_len = rec["meta"]["length"]
    fig = grid.fig
    right = grid.outer[1].subgridspec(2, 2, width_ratios=[20, 1], hspace=0.45, wspace=0.08)
    ax = fig.add_subplot(right[0, 0], gid="link")
    cax = fig.add_subplot(right[0, 1])
    link = rec["state.link"][-1]
    im = ax.imshow(link, cmap="viridis", vmin=0, vmax=max(1e-6, float(link.max())),
                   interpolation="nearest")
    ax.set_title(f"link matrix L at the end (step {t_len - 1})\n"
                 "L[i, j]: slot i was written right after slot j", fontsize=9)
    ax.set_xlabel("j (written before)")
    ax.set_ylabel("i (written after)")
    _index_ticks(ax, link.shape[0])
    ax.set_xticks(ax.get_yticks())
    ax.tick_params(axis="x", labelsize=6)
    fig.colorbar(im, cax=cax).set_label("link strength", fontsize=8)
    cax.tick_params(labelsize=7)
    _memory_at_end(fig, rec, right[1, 0], right[1, 1])


def _draw_ntm(grid: _Grid, rec: dict) -> None:
    """An NTM's write weights, each read head's weights, and each head's shift
    distribution over the steps; the memory at the end and the mean shifts on the right."""
    ww, rw = rec["state.write_weights"], rec["state.read_weights"]
    shifts = _ntm_shifts(rec)
    heat(grid, "write", ww.T, "slot", "weight", vmax=1.0,
         title="write weights w_t (slot × step): where the write head erases and adds")
    for i in range(rw.shape[1]):
        heat(grid, f"read{i}", rw[:, i].T, "slot", "weight", vmax=1.0, cmap="magma",
             title=f"read weights of read head {i} (slot × step)")
    for name, label, sh in shifts:
        ax = heat(grid, f"{name}_shift", sh.T, "offset", "s(offset)", vmax=1.0,
                  cmap="Greens", title=f"shift distribution of the {label} (offset × step; "
                                       "+1 moves the focus one slot forward)")
        _shift_ticks(ax, sh.shape[1])
    _draw_ntm_right(grid, rec, shifts)


def _draw_ntm_right(grid: _Grid, rec: dict, shifts) -> None:
    """The right column of an NTM: the memory at the end, and each head's shift
    distribution averaged over the episode as bars."""
    from dnc_core.addressing import shift_offsets

    fig = grid.fig
    right = grid.outer[1].subgridspec(2, 2, width_ratios=[20, 1], hspace=0.45, wspace=0.08)
    _memory_at_end(fig, rec, right[0, 0], right[0, 1])
    ax = fig.add_subplot(right[1, 0], gid="mean_shift")
    fig.add_subplot(right[1, 1]).axis("off")
    offsets = shift_offsets(shifts[0][2].shape[1])
    _grouped_bars(ax, np.arange(len(offsets)), [sh.mean(0) for _, _, sh in shifts],
                  [_head_colour(j - 1) for j in range(len(shifts))],
                  [label for _, label, _ in shifts])
    ax.set_xticks(range(len(offsets)))
    ax.set_xticklabels([f"{o:+d}" for o in offsets])
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("shift offset")
    ax.set_ylabel("mean s(offset)")
    ax.legend(fontsize=7)
    ax.set_title("shift distributions, averaged over the episode", fontsize=9)


def _draw_units(grid: _Grid, rec: dict) -> None:
    """A core without external memory: each unit state (h, and c for an LSTM) over the
    steps, on a colour scale symmetric about 0."""
    for name in unit_states(rec):
        arr = rec[f"state.{name}"]
        heat(grid, name, arr.T, "unit", name, cmap="RdBu_r")
        ax, _ = grid.axes[name]
        lim = max(1e-6, float(np.abs(arr).max()))
        ax.images[0].set_clim(-lim, lim)
        ax.set_title(f"{_core_label(rec)} {_UNIT_STATES[name]} "
                     "(unit × step): this core has no external memory", fontsize=9,
                     loc="left")


def _label_steps(grid: _Grid, last_row: str, t_len: int) -> None:
    """The step axis: labelled on the bottom row only, a tick per step up to 60 steps."""
    for name, (ax, _) in grid.axes.items():
        if name != last_row:
            ax.tick_params(axis="x", labelbottom=False)
    last = grid.axes[last_row][0]
    last.set_xlabel("step t")
    last.set_xlim(*grid.extent)
    if t_len <= 60:
        last.set_xticks(np.arange(t_len))


def _memory_at_end(fig, rec: dict, cell, cbar_cell) -> None:
    """The memory after the last step (slot × word) in one grid cell."""
    t_len = rec["meta"]["length"]
    ax = fig.add_subplot(cell, gid="memory")
    cax = fig.add_subplot(cbar_cell)
    mem = rec["state.memory"][-1]
    lim = max(1e-6, float(np.abs(mem).max()))
    im = ax.imshow(mem, cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest",
                   aspect="auto")
    ax.set_title(f"memory M at the end (slot × word), step {t_len - 1}", fontsize=9)
    ax.set_xlabel("word element")
    ax.set_ylabel("slot")
    _index_ticks(ax, mem.shape[0])
    fig.colorbar(im, cax=cax).set_label("value", fontsize=8)
    cax.tick_params(labelsize=7)


# --------------------------------------------------------------------------------------
# The GIF
# --------------------------------------------------------------------------------------
_GIF_WIDTHS = {"frame": 4.0, "bars": 5.0, "link": 3.2, "shift": 2.6, "memory": 3.2}


def write_gif(rec: dict, path: str | Path, fps: float = 3.0, progress: bool = False) -> Path:
    """One GIF frame per step: the env's frame before step t (if it renders) beside the
    state after step t (DNC: usage, write and read weights as bars, the link matrix;
    NTM: write and read weights, each head's shift distribution as bars, the memory;
    LSTM: h and c; GRU: h)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax_of = _gif_figure(rec)
    artists = {}
    if rec.get("frames") is not None:
        artists["frame"] = _gif_env_frame(ax_of["frame"], rec["frames"])
    kind = memory_kind(rec)
    if kind == "dnc":
        artists.update(_gif_dnc(ax_of, rec))
    elif kind == "ntm":
        artists.update(_gif_ntm(ax_of, rec))
    else:
        artists.update(_gif_units(ax_of["bars"], rec))
    images = _gif_images(fig, rec, artists, progress)
    plt.close(fig)
    return _save_gif(images, path, fps)


def _gif_figure(rec: dict):
    """``(figure, {panel: axes})``: the panels side by side, the env's frame first when
    the recording has frames."""
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    panels = (["frame"] if rec.get("frames") is not None else [])
    panels += {"dnc": ["bars", "link"], "ntm": ["bars", "shift", "memory"]}.get(
        memory_kind(rec), ["bars"])
    fig = plt.figure(figsize=(sum(_GIF_WIDTHS[p] for p in panels), 3.8), dpi=85)
    FigureCanvasAgg(fig)
    gs = fig.add_gridspec(1, len(panels), width_ratios=[_GIF_WIDTHS[p] for p in panels],
                          left=0.05, right=0.97, top=0.74, bottom=0.14, wspace=0.3)
    return fig, {p: fig.add_subplot(gs[0, i]) for i, p in enumerate(panels)}


def _gif_env_frame(ax, frames: np.ndarray):
    """The env's first frame, without ticks; the image artist."""
    image = ax.imshow(frames[0], interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title("env (before the action)", fontsize=9)
    return image


def _gif_legend(ax, ncol: int, title: str) -> None:
    """The bar legend, in one row above the axes."""
    ax.legend(fontsize=7, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=ncol,
              frameon=False, title=title, title_fontsize=9)


def _gif_slot_ticks(ax, n: int) -> None:
    x = np.arange(n)
    ax.set_xticks(x if n <= 32 else x[:: max(1, n // 16)])


def _gif_dnc(ax_of: dict, rec: dict) -> dict:
    """A DNC's usage, write and read weights as bars over the slots, and its link
    matrix; the artists that follow the steps (``bars``/``series``, ``image``/
    ``image_series``)."""
    rw = rec["state.read_weights"]
    series = [("usage", rec["state.usage"], "tab:gray"),
              ("write w", rec["state.write_weights"], "tab:orange")]
    series += [(f"read w (head {i})", rw[:, i], _head_colour(i)) for i in range(rw.shape[1])]
    ax = ax_of["bars"]
    n = rec["state.usage"].shape[1]
    bars = _grouped_bars(ax, np.arange(n), [s[0] for _, s, _ in series],
                         [c for _, _, c in series], [lab for lab, _, _ in series])
    ax.set_ylim(0, 1.02)
    _gif_slot_ticks(ax, n)
    ax.tick_params(labelsize=7)
    ax.set_xlabel("memory slot")
    _gif_legend(ax, len(series), "memory state after the step")
    link = rec["state.link"]
    ax = ax_of["link"]
    image = ax.imshow(link[0], cmap="viridis", vmin=0, vmax=max(1e-6, float(link.max())),
                      interpolation="nearest")
    ax.set_title("link matrix L[i, j]", fontsize=9)
    ax.set_xlabel("j (written before)", fontsize=8)
    ax.set_ylabel("i (written after)", fontsize=8)
    _index_ticks(ax, link.shape[1])
    ax.set_xticks(ax.get_yticks())
    ax.tick_params(labelsize=6)
    return {"bars": bars, "series": [s for _, s, _ in series], "image": image,
            "image_series": link}


def _gif_ntm(ax_of: dict, rec: dict) -> dict:
    """An NTM's head weights over the slots and each head's shift distribution as bars,
    and its memory; the artists that follow the steps (as :func:`_gif_dnc`)."""
    from dnc_core.addressing import shift_offsets

    rw = rec["state.read_weights"]
    colours = [_head_colour(i) for i in range(-1, rw.shape[1])]
    labels = ["write"] + [f"read (head {i})" for i in range(rw.shape[1])]
    weights = [rec["state.write_weights"]] + [rw[:, i] for i in range(rw.shape[1])]
    shifts = [sh for _, _, sh in _ntm_shifts(rec)]
    bars = []
    for ax, series, xlabel in ((ax_of["bars"], weights, "memory slot"),
                               (ax_of["shift"], shifts, "shift offset")):
        bars += _grouped_bars(ax, np.arange(series[0].shape[1]), [s[0] for s in series],
                              colours, labels)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel(xlabel)
        ax.tick_params(labelsize=7)
    _gif_slot_ticks(ax_of["bars"], weights[0].shape[1])
    _gif_legend(ax_of["bars"], len(weights), "head weights after the step")
    ax = ax_of["shift"]
    ax.set_xticks(range(shifts[0].shape[1]))
    ax.set_xticklabels([f"{o:+d}" for o in shift_offsets(shifts[0].shape[1])])
    ax.set_title("shift distributions", fontsize=9)
    mem = rec["state.memory"]
    lim = max(1e-6, float(np.abs(mem).max()))
    ax = ax_of["memory"]
    image = ax.imshow(mem[0], cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest",
                      aspect="auto")
    ax.set_title("memory M (slot × word)", fontsize=9)
    ax.set_xlabel("word element", fontsize=8)
    ax.set_ylabel("slot", fontsize=8)
    _index_ticks(ax, mem.shape[1])
    ax.tick_params(labelsize=6)
    return {"bars": bars, "series": weights + shifts, "image": image, "image_series": mem}


def _gif_units(ax, rec: dict) -> dict:
    """A core without external memory: its unit states as bars over the units, on a
    scale symmetric about 0; the bars that follow the steps."""
    units = unit_states(rec)
    series = [rec[f"state.{n}"] for n in units]
    colours = {"h": "tab:blue", "c": "tab:orange"}
    bars = _grouped_bars(ax, np.arange(series[0].shape[1]), [s[0] for s in series],
                         [colours[n] for n in units], units)
    lim = max(1e-6, max(float(np.abs(s).max()) for s in series))
    ax.set_ylim(-lim, lim)
    ax.set_xlabel(f"{_core_label(rec)} unit (no external memory)")
    _gif_legend(ax, len(series), "controller state after the step")
    return {"bars": bars, "series": series}


def _gif_caption(rec: dict, t: int) -> str:
    """The GIF's heading at step ``t``: the step, the action, the reward and the return
    so far; the outcome on the last step."""
    m = rec["meta"]
    t_len = m["length"]
    a = rec["action"][t]
    a_txt = str(a.tolist() if np.ndim(a) else a.item())
    ret = float(rec["reward"][: t + 1].sum())
    return (f"{m['env_id']} seed {m['seed']}   step {t}/{t_len - 1}   "
            f"action {a_txt}   reward {rec['reward'][t]:+.2f}   return so far "
            f"{ret:+.2f}" + (f"\nsuccess: {m['success']}" if t == t_len - 1
                              and m["success"] is not None else ""))


def _gif_images(fig, rec: dict, artists: dict, progress: bool) -> list:
    """Each step drawn: the artists set to that step, the figure rendered to an image."""
    from PIL import Image
    from tqdm import tqdm

    frames = rec.get("frames")
    head = fig.suptitle("", fontsize=9)
    images = []
    for t in tqdm(range(rec["meta"]["length"]), disable=not progress, desc="gif",
                  unit="frame", file=sys.stderr, leave=False):
        if frames is not None:
            artists["frame"].set_data(frames[t])
        for bars, s in zip(artists["bars"], artists["series"]):
            for rect, v in zip(bars, s[t]):
                rect.set_height(float(v))
        if "image" in artists:
            artists["image"].set_data(artists["image_series"][t])
        head.set_text(_gif_caption(rec, t))
        fig.canvas.draw()
        images.append(Image.fromarray(np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()))
    return images


def _save_gif(images: list, path: str | Path, fps: float) -> Path:
    """The images as a looping GIF at ``fps``, the last one shown at least 1.5 s."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    durations = [int(1000 / fps)] * len(images)
    durations[-1] = max(durations[-1], 1500)  # linger on the outcome
    images[0].save(path, save_all=True, append_images=images[1:], duration=durations, loop=0,
                   optimize=True)
    return path
