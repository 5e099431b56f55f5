"""The report's figures (matplotlib's Figure API) and image panels (PIL), each saved as PNG."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from emf_bench.storage import atomic_path


def _figure(width: float = 6.4, height: float = 4.0, columns: int = 1):
    """A figure of the object API (no pyplot, no process-wide backend switch: a notebook's
    backend stays as it is)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110)
    axes = fig.subplots(1, columns)
    return fig, axes


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


def _lines(part: pd.DataFrame) -> pd.DataFrame:
    """One line per model, and a partial run (`--tags`, `--limit`) of it a line of its own."""
    if "subset" not in part:
        return part.assign(line=part["model"])
    partial = part["subset"].fillna("all prompts") != "all prompts"
    return part.assign(line=part["model"].where(~partial, part["model"] + " [" +
                                                part["subset"].fillna("") + "]"))


def training_curves(probes, path: Path) -> Path | None:
    """Loss (log scale) and images/s against training minutes, one line per probe."""
    probes = [p for p in probes if len(p.log)]
    if not probes:
        return None
    fig, (loss_ax, rate_ax) = _figure(9.0, 3.6, columns=2)
    for p in probes:
        minutes = p.log["seconds"] / 60
        label = f"{p.encoder} ({p.objective})"
        loss_ax.plot(minutes, p.log["mse"], label=label, lw=1)
        rate_ax.plot(minutes, p.log["images_per_s"], label=label, lw=1)
    loss_ax.set(yscale="log", xlabel="training minutes", ylabel="per-sample squared error",
                title="training loss")
    rate_ax.set(xlabel="training minutes", ylabel="images / s", title="throughput")
    loss_ax.legend(fontsize=7)
    return _save(fig, path)


def score_vs_steps(table: pd.DataFrame, benchmark: str, path: Path,
                   metric: str = "overall") -> Path | None:
    """Score against sampling steps, one line per model, with bootstrap intervals if given."""
    part = table[(table["benchmark"] == benchmark) & (table["metric"] == metric)]
    part = part[part["steps"] > 0]
    if part.empty:
        return None
    fig, ax = _figure()
    for model, rows in _lines(part).groupby("line"):
        rows = rows.sort_values("steps")
        ax.plot(rows["steps"], rows["value"], marker="o", label=model)
        if {"low", "high"} <= set(rows) and rows["low"].notna().all():
            ax.fill_between(rows["steps"], rows["low"], rows["high"], alpha=0.15)
    ax.set_xscale("log", base=2)
    steps = sorted(part["steps"].unique())
    ax.set_xticks(steps, [str(s) for s in steps])
    unit = " x 100" if benchmark.endswith("dpg") else ""
    ax.set(xlabel="sampling steps", ylabel=f"{metric}{unit}", title=f"{benchmark}: {metric} "
           f"vs steps (measured)")
    ax.legend(fontsize=7)
    return _save(fig, path)


def breakdown(table: pd.DataFrame, benchmark: str, prefix: str, label: str, value: str,
              path: Path) -> Path | None:
    """A benchmark's scores by part (metrics named "<prefix> <part>": GenEval 2's skills or
    atomicity), one panel per step count, one line per model."""
    part = table[(table["benchmark"] == benchmark) &
                 table["metric"].str.startswith(prefix + " ")].copy()
    if part.empty:
        return None
    part["part"] = part["metric"].str[len(prefix) + 1:]
    order = list(dict.fromkeys(part["part"]))  # the benchmark's own order
    if all(p.isdigit() for p in order):
        order = sorted(order, key=int)
    steps = sorted(part["steps"].unique())
    fig, axes = _figure(min(3.6 * len(steps), 12.0), 3.6, columns=len(steps))
    axes = np.atleast_1d(axes)
    for ax, k in zip(axes, steps, strict=True):
        for model, rows in _lines(part[part["steps"] == k]).groupby("line"):
            values = rows.set_index("part")["value"].reindex(order)
            ax.plot(range(len(order)), values, marker="o", label=model)
        ax.set_xticks(range(len(order)), order, rotation=30 if len(order) > 6 else 0)
        ax.set(xlabel=label, title=f"{k} step{'s' if k != 1 else ''}" if k else "as given")
    axes[0].set_ylabel(f"{value} (measured)")
    axes[-1].legend(fontsize=7)
    fig.suptitle(f"{benchmark}: by {label}", fontsize=10)
    return _save(fig, path)


def study_scatter(study: pd.DataFrame, x: str, correlation: dict[str, Any] | None,
                  path: Path, steps: int = 1) -> Path | None:
    """Encoder property against the MeanFlow probes' 1-step score; Spearman's rho on the plot."""
    part = study[(study["steps"] == steps) & (study["objective"] == "meanflow")].dropna(
        subset=[x])
    if part.empty:
        return None
    fig, ax = _figure(5.2, 4.0)
    yerr = None
    if part["low"].notna().all():
        yerr = np.vstack([part["score"] - part["low"], part["high"] - part["score"]])
    ax.errorbar(part[x], part["score"], yerr=yerr, fmt="o", capsize=3)
    for _, row in part.iterrows():
        ax.annotate(row["encoder"], (row[x], row["score"]), fontsize=7,
                    xytext=(4, 4), textcoords="offset points")
    text = "Spearman rho: n/a"
    if correlation and correlation.get("rho") is not None:
        text = f"Spearman rho = {correlation['rho']:.2f} (p = {correlation['p']:.2f}, " \
               f"n = {correlation['n']})"
    elif correlation:
        text = correlation.get("note", text)
    ax.text(0.02, 0.97, text, transform=ax.transAxes, va="top", fontsize=8)
    ax.set(xlabel=f"{x} (world)", ylabel=f"world-GenEval overall, {steps} step",
           title=f"{x} vs {steps}-step score (95% bootstrap intervals)")
    return _save(fig, path)


def sample_strip(images: Sequence[np.ndarray], labels: Sequence[str], size: int = 96):
    """Images side by side at `size` px with a label above each (nearest-neighbour upscale)."""
    from PIL import Image, ImageDraw

    from emf_bench.world.preview import _font

    pad, text = 4, 14
    strip = Image.new("RGB", (len(images) * (size + pad) + pad, size + text + 2 * pad), "white")
    draw = ImageDraw.Draw(strip)
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        tile = Image.fromarray(image).resize((size, size), Image.NEAREST)
        x = pad + i * (size + pad)
        strip.paste(tile, (x, pad + text))
        draw.text((x, pad), label, fill="black", font=_font(11))
    return strip


def detections_overlay(image: np.ndarray, detections: dict[str, list[dict]], reason: str,
                       size: int = 192):
    """A failed GenEval image with its kept detections drawn and the reason written below."""
    import textwrap

    from PIL import Image, ImageDraw

    from emf_bench.world.preview import _font

    scale = size / image.shape[1]
    tile = Image.fromarray(image).resize((size, round(image.shape[0] * scale)), Image.NEAREST)
    lines = textwrap.wrap(reason.replace("\n", "; "), 34) or ["(no reason)"]
    canvas = Image.new("RGB", (tile.width, tile.height + 14 * len(lines) + 6), "white")
    canvas.paste(tile, (0, 0))
    draw = ImageDraw.Draw(canvas)
    font = _font(11)
    for label, found in detections.items():
        for d in found:
            x1, y1, x2, y2 = (v * scale for v in d["box"])
            draw.rectangle((x1, y1, x2 - 1, y2 - 1), outline=(255, 0, 255), width=2)
            draw.text((x1 + 2, max(y1 - 12, 0)), f"{label} {d['score']:.2f}", fill=(255, 0, 255),
                      font=font)
    for k, line in enumerate(lines):
        draw.text((3, tile.height + 3 + 14 * k), line, fill="black", font=font)
    return canvas


def grid(panels: Sequence[Any], columns: int, pad: int = 6):
    """PIL panels of any sizes in rows of `columns`."""
    from PIL import Image

    rows = math.ceil(len(panels) / columns)
    w = max(p.width for p in panels)
    h = max(p.height for p in panels)
    canvas = Image.new("RGB", (columns * (w + pad) + pad, rows * (h + pad) + pad), "white")
    for i, p in enumerate(panels):
        r, c = divmod(i, columns)
        canvas.paste(p, (pad + c * (w + pad), pad + r * (h + pad)))
    return canvas


