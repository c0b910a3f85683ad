"""`lenslink plot`: a 2-D map of what each lens sees, one panel per lens.

Each panel is the first two principal components of the lens's centred note vectors (what
the ranker's cosine compares), so the same notes can be seen side by side "by cuisine"
and "by climate". matplotlib is an optional extra (`pip install 'lenslink[plot]'`),
imported only when a map is drawn, with the Agg canvas (no display, no global state).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ConfigError, LenslinkError

ALL_LABELS_UP_TO = 15     # a lens with this many notes or fewer gets every note named
MAX_GROUPS = 9            # colours in the legend; smaller groups share "other"
NONE = "(none)"
OTHER = "other"
GREY = "#9a9a9a"
MISSING = "matplotlib is needed: pip install 'lenslink[plot]'"


@dataclass(frozen=True)
class LensMap:
    """One panel: a lens's notes placed in 2-D, their colour group, which get a label."""
    lens: str
    paths: tuple[str, ...]
    titles: tuple[str, ...]
    xy: np.ndarray                  # (n, 2) principal-component coordinates
    explained: tuple[float, float]  # share of the variance on each axis
    groups: tuple[str, ...]         # colour group per note
    labelled: tuple[int, ...]       # indices of the notes that get their title drawn
    sources: np.ndarray             # bool per note: the lens suggests for it
    description: str = ""


def require_matplotlib():
    """The matplotlib pieces the map needs (Figure, Agg canvas), or a one-line error."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise LenslinkError(MISSING) from None
    return Figure, FigureCanvasAgg


def check_out(out) -> Path:
    """The image path, refused when its folder does not exist or matplotlib cannot write
    its kind of file (checked before the index is loaded; no folder is created)."""
    out = Path(out)
    if not out.parent.is_dir():
        raise ConfigError(f"cannot write {out}: the folder {out.parent} does not exist")
    _, canvas = require_matplotlib()
    kinds = canvas.get_supported_filetypes()
    if out.suffix.lower().lstrip(".") not in kinds:
        raise ConfigError(f"cannot write {out}: give a file name ending in one of "
                          + ", ".join(f".{k}" for k in sorted(kinds)))
    return out


def pca_2d(vectors: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
    """(n, 2) coordinates on the first two principal axes and their variance shares.

    Signs are fixed (the point farthest out on an axis is on its positive side), so the
    same vectors always give the same picture."""
    x = np.asarray(vectors, dtype=np.float64)
    xy = np.zeros((len(x), 2))
    if len(x) < 2:
        return xy, (0.0, 0.0)
    x = x - x.mean(axis=0)
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    k = min(2, len(s))
    xy[:, :k] = u[:, :k] * s[:k]
    for axis in range(k):
        if xy[np.argmax(np.abs(xy[:, axis])), axis] < 0:
            xy[:, axis] *= -1
    total = float((s ** 2).sum())
    shares = [float(v) / total if total > 0 else 0.0 for v in s[:k] ** 2] + [0.0] * (2 - k)
    return xy, (shares[0], shares[1])


def colour_groups(folders: list[str], tags: list[tuple[str, ...]], by: str) -> list[str]:
    """Each note's colour group: its top folder, or its first tag that not every plotted
    note has (cities all tagged #city are told apart by #italy, #japan, ...)."""
    if by == "folder":
        return [f.split("/", 1)[0] if f else "(root)" for f in folders]
    if by != "tag":
        raise ConfigError(f"unknown colouring {by!r}; use folder or tag")
    shared = set.intersection(*(set(t) for t in tags)) if tags else set()
    return [next((t for t in ts if t not in shared), NONE) for ts in tags]


def pick_labels(xy: np.ndarray, count: int) -> list[int]:
    """Notes to name: all of a small lens, else the ones nearest the centre and the
    panel's extremes (ends of both axes, then the corners), in that order."""
    n = len(xy)
    if count <= 0 or n == 0:
        return []
    if n <= max(ALL_LABELS_UP_TO, count):
        return list(range(n))
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    mid = (lo + hi) / 2
    anchors = [mid, (hi[0], mid[1]), (lo[0], mid[1]), (mid[0], hi[1]), (mid[0], lo[1]),
               (hi[0], hi[1]), (lo[0], lo[1]), (hi[0], lo[1]), (lo[0], hi[1])]
    picked: list[int] = []
    while len(picked) < count:
        for anchor in anchors:
            if len(picked) == count:
                break
            dist = np.linalg.norm(xy - np.asarray(anchor), axis=1)
            dist[picked] = np.inf
            picked.append(int(np.argmin(dist)))
    return picked


def lens_map(ranking, lens: str | None, color: str = "folder", label: int = 8) -> LensMap:
    """The panel of one lens from a loaded ranking (`Vault.ranking()`)."""
    name = ranking.config.lens(lens).name
    view = ranking.views[name]
    # the lens's notes now: an updated snapshot keeps (zeroed) rows of the notes that left it
    idx = np.array(sorted(view.position.values()), dtype=np.int64)
    notes = [ranking.notes[int(r)] for r in view.rows[idx]]
    xy, explained = pca_2d(view.centred_rows(idx))
    return LensMap(lens=name, paths=tuple(n.path for n in notes), titles=tuple(n.title for n in notes),
                   xy=xy, explained=explained,
                   groups=tuple(colour_groups([n.folder for n in notes], [tuple(n.tags) for n in notes], color)),
                   labelled=tuple(pick_labels(xy, label)), sources=view.sources[idx],
                   description=view.lens.description)


def lens_maps(ranking, lenses: list[str | None], color: str = "folder", label: int = 8) -> list[LensMap]:
    return [lens_map(ranking, lens, color, label) for lens in lenses]


def palette(maps: list[LensMap]) -> dict[str, str]:
    """One colour per group, the same in every panel: the largest groups get their own
    colour (tab10), the rest share grey."""
    sizes: dict[str, int] = {}
    for m in maps:
        for g in m.groups:
            sizes[g] = sizes.get(g, 0) + 1
    ranked = sorted(sizes, key=lambda g: (g == NONE, -sizes[g], g))
    colours = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
               "#8c564b", "#e377c2", "#bcbd22", "#17becf"]
    own = ranked[:MAX_GROUPS] if len(ranked) <= MAX_GROUPS else ranked[:MAX_GROUPS - 1]
    out = {g: colours[i] for i, g in enumerate(own)}
    return {g: out.get(g, GREY) for g in sizes}


def render(maps: list[LensMap], out) -> Path:
    """Draw the panels side by side into `out` (format from its extension: .png, .svg, .pdf)."""
    Figure, FigureCanvasAgg = require_matplotlib()
    from matplotlib import patheffects
    from matplotlib.lines import Line2D

    out = Path(out)
    colours = palette(maps)
    fig = Figure(figsize=(5.2 * len(maps), 5.6), dpi=150, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(maps), squeeze=False)[0]
    outline = [patheffects.withStroke(linewidth=3, foreground="white")]
    for ax, m in zip(axes, maps):
        n = len(m.paths)
        ax.set_title(f"{m.lens}  ({n} notes)", fontsize=11, loc="left")
        if m.description:
            ax.set_title(m.description, fontsize=8, loc="right", color="#555555")
        ax.set_xlabel(f"PC1 ({m.explained[0]:.0%} of variance)", fontsize=8)
        ax.set_ylabel(f"PC2 ({m.explained[1]:.0%})", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(True, linewidth=0.4, alpha=0.4)
        if n == 0:
            ax.text(0.5, 0.5, "no notes", ha="center", va="center", transform=ax.transAxes)
            continue
        size = _marker_area(n)
        point_colours = [colours.get(g, GREY) for g in m.groups]
        for chosen, marker in ((m.sources, "o"), (~m.sources, "s")):
            if chosen.any():
                ax.scatter(m.xy[chosen, 0], m.xy[chosen, 1], s=size, marker=marker,
                           c=[c for c, keep in zip(point_colours, chosen) if keep],
                           edgecolors="white", linewidths=0.6, alpha=0.9, zorder=2)
        span = np.ptp(m.xy, axis=0)
        pad = np.where(span > 0, span * 0.12, 0.5)
        ax.set_xlim(m.xy[:, 0].min() - pad[0], m.xy[:, 0].max() + pad[0] * 2)
        ax.set_ylim(m.xy[:, 1].min() - pad[1], m.xy[:, 1].max() + pad[1])
    handles = [Line2D([], [], marker="o", linestyle="", color=c, label=g)
               for g, c in sorted(colours.items(), key=lambda gc: (gc[0] == NONE, gc[0]))
               if c != GREY]
    if any(c == GREY for c in colours.values()):
        handles.append(Line2D([], [], marker="o", linestyle="", color=GREY, label=OTHER))
    if any((~m.sources).any() for m in maps):
        handles.append(Line2D([], [], marker="s", linestyle="", color="#555555",
                              label="suggested only (not a source)"))
    if len(handles) > 1:
        rows = -(-len(handles) // 8)
        fig.legend(handles=handles, loc="outside lower center", ncols=-(-len(handles) // rows),
                   fontsize=8, frameon=False)
    # Lay the panels out once, freeze that, then put each label where it covers the
    # fewest other labels and points (needs final pixel positions).
    fig.canvas.draw()
    fig.set_layout_engine("none")
    renderer = fig.canvas.get_renderer()
    for ax, m in zip(axes, maps):
        if len(m.paths):
            radius = np.sqrt(_marker_area(len(m.paths))) / 2 * fig.dpi / 72   # pixels
            _place_labels(ax, m, renderer, radius, outline)
    try:
        fig.savefig(out)
    except ValueError as exc:  # e.g. an extension matplotlib cannot write
        raise ConfigError(f"cannot write {out.name}: {exc}") from None
    except OSError as exc:  # e.g. the folder is not writable
        raise ConfigError(f"cannot write {out}: {exc.strerror or exc}") from None
    return out


def _marker_area(n: int) -> float:
    """Marker area in points^2: large for a handful of notes, small for thousands."""
    return float(np.clip(4000 / n, 6, 70))


LABEL_OFFSETS = ((4, 3, "left", "bottom"), (4, -3, "left", "top"),
                 (-4, 3, "right", "bottom"), (-4, -3, "right", "top"))


def _place_labels(ax, m: LensMap, renderer, radius: float, outline) -> None:
    """Annotate the labelled notes, each at the offset that overlaps least (in pixels)
    with labels already placed, other notes' markers and the panel's edge."""
    points = ax.transData.transform(m.xy)
    frame = ax.get_window_extent(renderer)
    placed = []
    for i in m.labelled:
        best = None
        for dx, dy, ha, va in LABEL_OFFSETS:
            text = ax.annotate(m.titles[i], m.xy[i], xytext=(dx, dy), textcoords="offset points",
                               ha=ha, va=va, fontsize=8, zorder=3, path_effects=outline)
            box = text.get_window_extent(renderer)
            cost = sum(_overlap(box, other) for other in placed)
            near = ((points[:, 0] > box.x0 - radius) & (points[:, 0] < box.x1 + radius)
                    & (points[:, 1] > box.y0 - radius) & (points[:, 1] < box.y1 + radius))
            near[i] = False
            cost += int(near.sum()) * (2 * radius) ** 2
            cost += box.width * box.height - _overlap(box, frame)
            if best is None or cost < best[0]:
                if best is not None:
                    best[1].remove()
                best = (cost, text, box)
            else:
                text.remove()
            if cost == 0:
                break
        placed.append(best[2])


def _overlap(a, b) -> float:
    """Area shared by two display boxes."""
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return w * h if w > 0 and h > 0 else 0.0
