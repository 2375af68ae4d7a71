#!/usr/bin/env python3
"""Draws docs/scaling.png from the points `scripts/bench --scaling` measured (its JSON): wall
time against files and against bytes, for ours, @actions/cache and `tar | zstd`, save and
restore, and our peak RSS. Run by scripts/bench with a venv that has matplotlib."""

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

WHO = (("ours", "uv-nox-cache", "tab:blue"), ("official", "@actions/cache", "tab:orange"),
       ("baseline", "tar | zstd -T0", "tab:gray"))


def main(data_path: str, png: str) -> None:
    data = json.load(open(data_path))
    points = data["points"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    for ax, series, x_key, x_label, scale in (
        (axes[0], "files", "entries", "files and directories", 1),
        (axes[1], "bytes", "bytes", "MiB of files", 1 << 20),
    ):
        pts = sorted((p for p in points if p["series"] == series), key=lambda p: p[x_key])
        if not pts:
            ax.set_visible(False)
            continue
        xs = [p[x_key] / scale for p in pts]
        for who, label, colour in WHO:
            for op, style in (("save", "-"), ("restore", "--")):
                ys = [p.get(f"{who}_{op}") for p in pts]
                if any(y is None for y in ys):
                    continue
                ax.plot(xs, ys, style, marker="o", color=colour, label=f"{label} {op}")
        ax.set_xlabel(x_label)
        ax.set_ylabel("wall seconds")
        ax.grid(True, alpha=0.3)
        rss = ax.twinx()
        rss.plot(xs, [p["rss_mib"] for p in pts], ":", marker="s", color="tab:green", label="our peak RSS")
        rss.set_ylabel("our peak RSS, MiB")
        rss.set_ylim(0, max(100, max(p["rss_mib"] for p in pts) * 1.2))
        lines, labels = ax.get_legend_handles_labels()
        lines2, labels2 = rss.get_legend_handles_labels()
        ax.legend(lines + lines2, labels + labels2, fontsize=7, loc="upper left")
        ax.set_title(f"time against {series}")
    load = data.get("load", [0, 0])
    fig.suptitle(f"scripts/bench --scaling (2 CPUs, load average {load[0]:.1f} before, {load[1]:.1f} after)")
    fig.tight_layout()
    fig.savefig(png, dpi=100)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
