"""Numpy-only rendering helpers (no pygame): cell grids to RGB/ANSI, and simple shapes.

The grid environments describe a frame as a 2-D array of small integer *codes*
(wall, free, agent, goal, ...); :func:`codes_to_rgb` and :func:`codes_to_ansi` turn it
into an ``rgb_array`` frame or an ``ansi`` string with one shared palette, so the
environments only decide *what* is in each cell.
"""

from __future__ import annotations

import numpy as np

# Cell codes shared by the grid environments (and the Copy tasks' bit displays).
WALL, FREE, AGENT, GOAL, CUE_LEFT, CUE_RIGHT, WRONG, SEEN, BIT_ON, BIT_OFF, BLANK = range(11)

PALETTE = np.array(
    [
        (40, 40, 48),  # WALL
        (235, 235, 235),  # FREE
        (30, 100, 230),  # AGENT
        (40, 180, 70),  # GOAL
        (150, 60, 200),  # CUE_LEFT
        (240, 150, 30),  # CUE_RIGHT
        (210, 50, 50),  # WRONG
        (190, 215, 245),  # SEEN (inside the agent's view)
        (250, 250, 250),  # BIT_ON
        (70, 70, 80),  # BIT_OFF
        (15, 15, 20),  # BLANK
    ],
    dtype=np.uint8,
)
ANSI_CHARS = "#.AGLRXo10 "


def codes_to_rgb(codes: np.ndarray, cell_px: int) -> np.ndarray:
    """Return an ``(H*cell_px, W*cell_px, 3)`` uint8 frame for a 2-D array of cell codes."""
    img = PALETTE[codes]
    if cell_px > 1:
        img = np.repeat(np.repeat(img, cell_px, axis=0), cell_px, axis=1)
    return np.ascontiguousarray(img)


def codes_to_ansi(codes: np.ndarray, header: str = "") -> str:
    """Return the cell codes as text, one character per cell, under an optional header."""
    rows = ["".join(ANSI_CHARS[c] for c in row) for row in codes.tolist()]
    if header:
        rows.insert(0, header)
    return "\n".join(rows) + "\n"


def cell_size(n_cells: int, max_px: int = 640, largest: int = 24) -> int:
    """Cell size in pixels so ``n_cells`` fit in ``max_px`` (between 1 and ``largest``)."""
    return max(1, min(largest, max_px // max(1, n_cells)))


def fill_disc(img: np.ndarray, cx: float, cy: float, radius: float, color) -> None:
    """Paint a filled disc (pixel coordinates, ``cx`` = column) onto ``img`` in place."""
    h, w = img.shape[:2]
    r = int(np.ceil(radius))
    y0, y1 = max(0, int(cy) - r), min(h, int(cy) + r + 2)
    x0, x1 = max(0, int(cx) - r), min(w, int(cx) + r + 2)
    if y0 >= y1 or x0 >= x1:
        return
    ys, xs = np.ogrid[y0:y1, x0:x1]
    mask = (xs - cx) ** 2 + (ys - cy) ** 2 <= radius**2
    img[y0:y1, x0:x1][mask] = color


def draw_ring(img: np.ndarray, cx: float, cy: float, radius: float, width: float, color) -> None:
    """Paint a circle outline of the given width onto ``img`` in place."""
    h, w = img.shape[:2]
    r = int(np.ceil(radius + width))
    y0, y1 = max(0, int(cy) - r), min(h, int(cy) + r + 2)
    x0, x1 = max(0, int(cx) - r), min(w, int(cx) + r + 2)
    if y0 >= y1 or x0 >= x1:
        return
    ys, xs = np.ogrid[y0:y1, x0:x1]
    d = np.sqrt((xs - cx) ** 2 + (ys - cy) ** 2)
    img[y0:y1, x0:x1][np.abs(d - radius) <= width / 2] = color


def draw_segment(img: np.ndarray, p0, p1, color, thickness: float = 1.0) -> None:
    """Paint a straight segment from ``p0`` to ``p1`` (``(x, y)`` pixels) as a row of discs."""
    n = int(max(abs(p1[0] - p0[0]), abs(p1[1] - p0[1]))) + 1
    for t in np.linspace(0.0, 1.0, n):
        fill_disc(img, p0[0] + t * (p1[0] - p0[0]), p0[1] + t * (p1[1] - p0[1]), thickness, color)


def warn_no_render_mode() -> None:
    """What ``render()`` does when the env was made without a render mode: warn, return None."""
    from gymnasium import logger

    logger.warn("render() called without a render_mode; pass render_mode= to make().")


class CodeGridRender:
    """Mixin giving ``render()`` to envs that draw themselves as a grid of cell codes.

    Subclasses implement ``_render_codes()`` (a 2-D int array of the codes above) and
    ``_ansi_header()`` (one line of text), and set ``render_mode``; ``rgb_array`` and
    ``ansi`` then come for free. An env whose grid changes size from episode to episode
    (a drawn length or maze size) returns the largest grid's shape from
    ``_rgb_canvas()``: its ``rgb_array`` frames are then that size in every episode (the
    grid in the top-left corner, the rest ``BLANK``), so a video of several episodes
    keeps one frame size and one scale.
    """

    render_mode: str | None
    max_frame_px = 640

    def _render_codes(self) -> np.ndarray:
        raise NotImplementedError

    def _ansi_header(self) -> str:
        return ""

    def _rgb_canvas(self) -> tuple[int, int] | None:
        """``(rows, cols)`` of every ``rgb_array`` frame's grid, or None: each frame's own."""
        return None

    def render(self):
        if self.render_mode is None:
            return warn_no_render_mode()
        codes = self._render_codes()
        if self.render_mode == "ansi":
            return codes_to_ansi(codes, self._ansi_header())
        canvas = self._rgb_canvas()
        if canvas is not None and canvas != codes.shape:
            full = np.full(canvas, BLANK, codes.dtype)
            full[: codes.shape[0], : codes.shape[1]] = codes
            codes = full
        return codes_to_rgb(codes, cell_size(max(codes.shape), self.max_frame_px))
