"""Append-only JSON-lines logs and the plots made from them."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

from .io import WriteFailed, atomic_write_text, save_figure


class JsonlLogger:
    """One JSON object per line, flushed at once, so a crash loses nothing written.

    A line the disk has no room for is taken back whole: the log keeps every line
    before it and never ends in half a line.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "ab", buffering=0)   # unbuffered: a line is on disk or not at all
        except OSError as err:
            raise WriteFailed(err.errno, err.strerror, str(self.path)) from None

    def write(self, record: dict) -> None:
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
        line = (json.dumps(clean) + "\n").encode("utf-8")
        end = self._file.tell()
        try:
            done = 0
            while done < len(line):
                done += self._file.write(line[done:])
        except OSError as err:
            os.ftruncate(self._file.fileno(), end)   # take back the part that reached the disk
            raise WriteFailed(err.errno, err.strerror, str(self.path)) from None

    def close(self) -> None:
        self._file.close()


def read_jsonl(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut short by a crash: the rest of the log is still good
    return rows


def truncate_after_step(path: str | Path, step: int) -> int:
    """Drop log lines past `step` (a resumed run rewrites them); returns lines kept."""
    path = Path(path)
    rows = [r for r in read_jsonl(path) if r.get("step", 0) <= step]
    if path.exists():
        atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))
    return len(rows)


def plot_curves(rows_by_run: dict[str, list[dict]], path: str | Path, panels: list[tuple[str, str]],
                log_scale: tuple[str, ...] = ()) -> Path | None:
    """One panel per (key, title) found in the rows, one line per run (same colour everywhere), as one PNG;
    None when no row has any of the keys. Keys in `log_scale` get a logarithmic y axis."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [p for p in panels if any(p[0] in r for rows in rows_by_run.values() for r in rows)]
    if not panels:
        return None
    cols = 2
    fig, axes = plt.subplots(-(-len(panels) // cols), cols, figsize=(11, 2.6 * -(-len(panels) // cols)),
                             squeeze=False)
    colors = {name: f"C{i % 10}" for i, name in enumerate(rows_by_run)}
    for ax, (key, title) in zip(axes.flat, panels):
        for name, rows in rows_by_run.items():
            pts = [(r["step"], r[key]) for r in rows if r.get(key) is not None]
            if pts:
                ax.plot(*zip(*pts), label=name, color=colors[name], linewidth=1,
                        marker="o" if len(pts) < 20 else None, markersize=3)
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=7)
        if key in log_scale:
            ax.set_yscale("log")
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    handles = [plt.Line2D([], [], color=c, label=n) for n, c in colors.items()]
    axes.flat[0].legend(handles=handles, fontsize=7)
    for ax in axes[-1]:
        ax.set_xlabel("step", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path, dpi=90)
