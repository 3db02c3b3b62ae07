"""Renders the PNG of one determinism experiment from the JSON that `bitexact experiment` wrote.

    python bench/experiments/plot.py OUT/uniqueness.json   # writes OUT/uniqueness.png

uniqueness: distinct completion prefixes at each token index, by token ids and by token ids plus
logprob bits, one line per mode. throughput: wall time per mode, tokens/s on the bars. on-policy:
histogram of |logprob_sampler - logprob_trainer| per mode, exact zeros counted in the legend.
"""

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLORS = {"invariant": "tab:blue", "fast": "tab:red"}
# Invariant lines are drawn wide underneath, so an equal fast-mode line stays visible on top.
WIDTHS = {"invariant": 5}


def subtitle(report):
    s = report["settings"]
    return f"{Path(s['model']).name}, backend {s['backend']}, {report['date_utc']}"


def plot_uniqueness(report, ax_tokens, ax_bits):
    for m in report["modes"]:
        color = COLORS.get(m["mode"])
        for ax, key, distinct in (
            (ax_tokens, "distinct_prefixes", m["distinct_completions"]),
            (ax_bits, "distinct_prefixes_with_logprob_bits", m["distinct_with_logprob_bits"]),
        ):
            ys = m[key]
            ax.step(range(len(ys)), ys, where="post", color=color,
                    linewidth=WIDTHS.get(m["mode"], 1.5), alpha=0.8,
                    label=f"{m['mode']}: {distinct} distinct of {m['completions']}")
    ax_tokens.set_title("distinct completions (token ids)")
    ax_bits.set_title("distinct completions (token ids + logprob bits)")
    for ax in (ax_tokens, ax_bits):
        ax.set_xlabel("token index")
        ax.set_ylabel("distinct prefixes up to this token")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend()


def plot_throughput(report, ax):
    modes = report["modes"]
    names = [m["mode"] for m in modes]
    walls = [m["wall_seconds"] for m in modes]
    bars = ax.bar(names, walls, color=[COLORS.get(n, "gray") for n in names])
    for bar, m in zip(bars, modes):
        ax.annotate(f"{m['wall_seconds']:.2f} s\n{m['output_tokens_per_second']:.0f} tokens/s",
                    (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center", va="bottom")
    ax.set_ylabel("wall time (s)")
    ax.set_ylim(0, max(walls) * 1.25)
    ax.set_title(f"{modes[0]['requests']} requests, {modes[0]['output_tokens']} output tokens")
    ax.grid(axis="y", alpha=0.3)


def plot_on_policy(report, ax):
    drew = False
    for m in report["modes"]:
        h = m["delta_histogram"]
        per = h["bins_per_decade"]
        edges = [10 ** (h["first_decade"] + i / per) for i in range(len(h["counts"]) + 1)]
        label = (f"{m['mode']}: {h['zero']} of {m['tokens']} deltas exactly 0, "
                 f"max |delta| {m['max_abs_delta_logprob']:.3g}, KL k1 {m['kl_k1_per_token']:.3g}")
        if sum(h["counts"]) > 0:
            ax.stairs(h["counts"], edges, color=COLORS.get(m["mode"]), label=label, fill=True,
                      alpha=0.5)
            drew = True
        else:
            ax.plot([], [], color=COLORS.get(m["mode"]), label=label, linewidth=6)
    ax.set_xscale("log")
    if not drew:
        ax.set_xlim(10 ** -10, 10)
    ax.set_xlabel("|logprob sampler - logprob trainer| (nonzero)")
    ax.set_ylabel("tokens")
    ax.set_title("sampler vs teacher-forced logprobs")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize="small")


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: plot.py OUT/NAME.json (writes OUT/NAME.png)")
    path = Path(sys.argv[1])
    report = json.loads(path.read_text())
    name = report["experiment"]
    if name == "uniqueness":
        fig, axes = plt.subplots(1, 2, figsize=(13, 5))
        plot_uniqueness(report, *axes)
    elif name == "throughput":
        fig, ax = plt.subplots(figsize=(6, 5))
        plot_throughput(report, ax)
    elif name == "on-policy":
        fig, ax = plt.subplots(figsize=(9, 5))
        plot_on_policy(report, ax)
    else:
        sys.exit(f"{path}: unknown experiment '{name}'")
    fig.suptitle(f"{name}: {subtitle(report)}")
    fig.tight_layout()
    out = path.with_suffix(".png")
    fig.savefig(out, dpi=100)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
