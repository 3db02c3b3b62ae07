"""Renders the GRPO benchmark's rl.json (grpo.py) as rl.md (a table per arm) and rl.png (reward,
KL and mismatch against the step, one line per engine mode).

    python bench/rl/report.py bench/results/rl/cpu/rl.json [ARM.json ...]

Further JSON files (runs of single arms, e.g. run side by side with --arms invariant and --arms
fast, same settings) have their arms appended to the first one's, which is rewritten.
"""

import json
import sys
from pathlib import Path

COLORS = {"invariant": "tab:blue", "fast": "tab:red"}
WIDTHS = {"invariant": 5}  # drawn wide underneath, so an equal fast-mode line stays visible


def markdown(report) -> str:
    s = report["settings"]
    lines = [f"# GRPO, sampler bitexact.LLM and trainer bitexact.torch: {Path(s['model']).name}",
             "",
             f"{report['date_utc']}; backend {s['backend']}; task {s.get('task')}; "
             f"{s['prompts']} prompts x {s['group']} samples, max {s['max_tokens']} tokens, "
             f"temperature 1; AdamW lr {s['lr']}, clip {s['clip']}; seed {s['seed']}.",
             f"Machine: {report['machine']['platform']}"
             + (f", {report['machine']['gpu']}" if report['machine'].get('gpu') else "")
             + f"; torch {report['machine']['torch']}, transformers "
               f"{report['machine']['transformers']}.",
             f"Command: `{s['command']}`", ""]
    for arm in report["arms"]:
        steps = arm["steps"]
        total = sum(r["sampled_tokens"] for r in steps)
        differ = sum(r["mismatched_tokens"] for r in steps)
        lines += [f"## engine mode {arm['mode']}", "",
                  f"Fingerprint `{arm['fingerprint']}`. Over all {len(steps)} steps: {differ} of "
                  f"{total} sampled tokens have trainer logprob bits different from the "
                  f"sampler's.", "",
                  "| step | mean reward | KL k3 | KL k1 | max abs delta logprob | tokens differing "
                  "| sample tok/s | train tok/s | weight sync s |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in steps:
            lines.append(
                f"| {r['step']} | {r['mean_reward']:.3f} | {r['kl_k3']:.3g} | {r['kl_k1']:.3g} | "
                f"{r['max_abs_delta_logprob']:.3g} | {r['mismatched_tokens']}/{r['sampled_tokens']}"
                f" ({100 * r['mismatch_fraction']:.1f}%) | {r['sampling_tokens_per_second']:.0f} | "
                f"{r['training_tokens_per_second']:.0f} | {r['weight_sync_seconds']:.3f} |")
        lines.append("")
    return "\n".join(lines)


def plot(report, path: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    for arm in report["arms"]:
        steps = [r["step"] for r in arm["steps"]]
        kw = dict(color=COLORS.get(arm["mode"]), linewidth=WIDTHS.get(arm["mode"], 1.5),
                  alpha=0.8, label=arm["mode"], marker="o", markersize=3)
        axes[0].plot(steps, [r["mean_reward"] for r in arm["steps"]], **kw)
        axes[1].plot(steps, [r["kl_k3"] for r in arm["steps"]], **kw)
        axes[2].plot(steps, [r["mismatch_fraction"] for r in arm["steps"]], **kw)
    titles = ("mean reward", "KL(sampler || trainer), k3 per token",
              "fraction of sampled tokens whose logprob bits differ")
    for ax, title in zip(axes, titles):
        ax.set_title(title)
        ax.set_xlabel("GRPO step")
        ax.grid(alpha=0.3)
        ax.legend()
    axes[1].set_yscale("symlog", linthresh=1e-9)
    axes[2].set_ylim(bottom=0)
    s = report["settings"]
    fig.suptitle(f"GRPO: {Path(s['model']).name}, backend {s['backend']}, {report['date_utc']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def merge(json_path: Path, others):
    report = json.loads(Path(json_path).read_text())
    for other in others:
        more = json.loads(Path(other).read_text())
        keys = ("model", "backend", "steps", "prompts", "group", "max_tokens", "lr", "clip", "seed")
        for k in keys:
            if more["settings"][k] != report["settings"][k]:
                sys.exit(f"report.py: {other} has {k} {more['settings'][k]!r}, {json_path} has "
                         f"{report['settings'][k]!r}: not the same experiment")
        report["arms"] += more["arms"]
        report["settings"]["command"] += " ; " + more["settings"]["command"]
    Path(json_path).write_text(json.dumps(report, indent=1))


def write_report(json_path: Path):
    json_path = Path(json_path)
    report = json.loads(json_path.read_text())
    json_path.with_suffix(".md").write_text(markdown(report))
    try:
        plot(report, json_path.with_suffix(".png"))
    except ImportError as e:
        print(f"report.py: no PNG ({e}); run bench/rl/report.py {json_path} where matplotlib is "
              "installed", file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: report.py RL_JSON [ARM_JSON ...] (rl.json files grpo.py wrote)")
    if len(sys.argv) > 2:
        merge(Path(sys.argv[1]), sys.argv[2:])
    write_report(Path(sys.argv[1]))
