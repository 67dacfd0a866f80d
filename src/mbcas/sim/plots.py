"""PNG plots of a simulation: allocations, throttling and the NSW potential over time.

matplotlib is imported lazily (Agg backend, no display needed) so the rest of the CLI works
without it; :class:`PlotsUnavailableError` says so when it is missing. Figures are kept small (low
DPI, few pods per panel) because example reports are checked in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from mbcas.sim.engine import RunTrace
from mbcas.sim.metrics import nsw_series

__all__ = ["PlotsUnavailableError", "write_plots"]

FloatArray = npt.NDArray[np.float64]

_DPI = 72
_MAX_PODS = 6
_POINTS = 300  # at most about this many points per line


class PlotsUnavailableError(RuntimeError):
    """matplotlib is not installed (install the ``sim`` extra)."""


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise PlotsUnavailableError("plots need matplotlib: pip install 'mbcas[sim]'") from exc
    return plt


def _smooth(x: FloatArray, window: int) -> FloatArray:
    if window <= 1 or x.size < window:
        return x
    kernel = np.ones(window)
    # Centred mean over the samples that exist (no dip at the edges from zero padding).
    out: FloatArray = np.convolve(x, kernel, mode="same") / np.convolve(np.ones_like(x), kernel, mode="same")
    return out


def _blocks(x: FloatArray, points: int) -> FloatArray:
    """Block means along axis 0 so that at most about ``points`` rows remain (keeps PNGs small)."""
    k = max(1, x.shape[0] // points)
    if k == 1:
        return x
    m = x.shape[0] // k * k
    out: FloatArray = x[:m].reshape(m // k, k, *x.shape[1:]).mean(axis=1)
    return out


def _pods_to_show(trace: RunTrace) -> npt.NDArray[np.intp]:
    n = trace.demand.shape[1]
    if n <= _MAX_PODS:
        return np.arange(n)
    # The pods whose demand moves most are the interesting ones.
    score = trace.demand.max(axis=0) - trace.demand.min(axis=0)
    return np.sort(np.argsort(-score, kind="stable")[:_MAX_PODS])


def write_plots(traces: dict[str, RunTrace], out_dir: Path, pod_names: tuple[str, ...]) -> list[Path]:
    """Write ``allocations.png``, ``throttling.png`` and ``nsw.png`` into ``out_dir``."""
    plt = _pyplot()
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    names = list(traces)
    first = traces[names[0]]
    ticks = first.demand.shape[0]
    t_min: FloatArray = np.arange(ticks, dtype=np.float64) * (first.tick_s / 60.0)
    t_blk = _blocks(t_min, _POINTS)
    show = _pods_to_show(first)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]

    cols = 2
    rows = (len(names) + 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(9, 2.0 * rows + 0.6), sharex=True, sharey=True)
    for ax, name in zip(np.ravel(axes), names, strict=False):
        tr = traces[name]
        for c, j in enumerate(show):
            color = colors[c % len(colors)]
            ax.plot(t_blk, _blocks(tr.demand[:, j], _POINTS), color=color, lw=0.5, alpha=0.35)
            ax.plot(t_blk, _blocks(tr.limit[:, j], _POINTS), color=color, lw=1.1, label=pod_names[j])
        ax.set_title(tr.label, fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in np.ravel(axes)[len(names) :]:
        ax.axis("off")
    handles, labels = np.ravel(axes)[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 6), fontsize=7, frameon=False)
    fig.suptitle("CPU limit per pod (thick) and demand (thin), cores, vs minutes", fontsize=10)
    fig.tight_layout(rect=(0, 0.05, 1, 0.97))
    written.append(_save(fig, out_dir / "allocations.png", plt))

    window = max(1, round(30.0 / first.tick_s))
    fig, axes = plt.subplots(2, 1, figsize=(9, 5), sharex=True)
    for c, name in enumerate(names):
        tr = traces[name]
        d = tr.demand.sum(axis=1)
        safe = np.where(d > 0, d, 1.0)
        thr = np.where(d > 0, tr.withheld.sum(axis=1) / safe, 0.0)
        stall = np.where(d > 0, (tr.demand - tr.usage).sum(axis=1) / safe, 0.0)
        color = colors[c % len(colors)]
        axes[0].plot(t_blk, _blocks(_smooth(thr, window), _POINTS), color=color, lw=1.1, label=name)
        axes[1].plot(t_blk, _blocks(_smooth(stall, window), _POINTS), color=color, lw=1.1, label=name)
    axes[0].set_ylabel("throttled share", fontsize=8)
    axes[1].set_ylabel("stall share", fontsize=8)
    axes[1].set_xlabel("minutes", fontsize=8)
    axes[0].set_title(
        "Share of demanded CPU withheld by limits (top) and unserved (bottom), 30 s mean", fontsize=9
    )
    axes[0].legend(fontsize=7, ncol=6, frameon=False)
    for ax in axes:
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    written.append(_save(fig, out_dir / "throttling.png", plt))

    fig, axes = plt.subplots(2, 1, figsize=(9, 5), sharex=True)
    for c, name in enumerate(names):
        tr = traces[name]
        color = colors[c % len(colors)]
        nsw = _blocks(_smooth(nsw_series(tr.usage, tr.requests), window), _POINTS)
        axes[0].plot(t_blk, nsw, color=color, lw=1.1, label=name)
        if np.isfinite(tr.potential).any():
            axes[1].plot(t_min, tr.potential, color=color, lw=1.1, label=f"{name}: Σ w·log(limit)")
    axes[0].set_ylabel("Σ ŵ·log(usage)", fontsize=8)
    axes[0].set_title("NSW of served CPU (top, 30 s mean) and MBCAS's own potential (bottom)", fontsize=9)
    axes[0].legend(fontsize=7, ncol=6, frameon=False)
    axes[1].set_ylabel("Σ w·log x (cores)", fontsize=8)
    axes[1].set_xlabel("minutes", fontsize=8)
    if axes[1].get_legend_handles_labels()[0]:
        axes[1].legend(fontsize=7, frameon=False)
    for ax in axes:
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    written.append(_save(fig, out_dir / "nsw.png", plt))
    return written


def _save(fig: Any, path: Path, plt: Any) -> Path:
    fig.savefig(path, dpi=_DPI)
    plt.close(fig)
    _quantise(path)
    return path


def _quantise(path: Path) -> None:
    """Re-save as a 64-colour palette PNG (about a third of the size; plots have few colours)."""
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow comes with matplotlib
        return
    with Image.open(path) as img:
        small = img.convert("RGB").quantize(colors=64, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)
