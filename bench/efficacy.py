"""Does the loop align, beyond noise? The demo campaign run with each method, each with K
seeds (sampling and training) on the same prompts and judge, and one JSON line.

Methods: cut_contrast (CUT flagging by the paper's ratio test), cut_spans (CUT flagging the
tokens of the spans the judge faults), cut_union (both), cut_spans_ul (cut_spans without
MLE on the negative answers' unflagged tokens in the plain context), cut_spans_short
(cut_spans on each instruction's shortest positive only), sft (MLE on the positives), dpo.
Per method m: `<m>_prompt_acc_by_round` (held-out IFEval prompt-level strict accuracy,
mean over seeds, round 0 first), `<m>_prompt_acc_ci95_by_round` ([low, high] per round, a
t interval across seeds; null with one seed), `<m>_gain_r3` (mean gain of the last round
over round 0), `<m>_gain_r3_ci95`, `<m>_pooled_p` (exact McNemar test of the last round
against round 0 over every seed's items together), `<m>_length_by_round` (characters per
answer, mean over seeds); and `demo_method`, `demo_checkpoint` (the demo method's final
checkpoint for the first seed), `seeds`, `minutes`. A campaign already in the store is
resumed and a finished one is read, not rerun, so an interrupted bench goes on where it stopped.

    .venv/bin/python bench/efficacy.py [--config campaigns/demo-cpu.yaml] [--seeds 3]
        [--methods cut_contrast,cut_spans,sft,dpo]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orchestrator.config import load_campaign
from store.campaigns import campaign_by_name
from store.engine import make_engine, session_factory
from store.home import cutloop_home
from store.models import CampaignStatus
from store.summaries import round_summaries
from store.training import checkpoint_of

# The CUT variants name both objective settings, so each means the same whatever the
# base campaign sets: cut_contrast is the paper's objective on any demo config.
VARIANTS: dict[str, dict] = {
    "cut_contrast": {"method": "cut", "cut": {"flagging": "contrast", "misalign_mle": True}},
    "cut_spans": {"method": "cut", "cut": {"flagging": "spans", "misalign_mle": True}},
    "cut_union": {"method": "cut", "cut": {"flagging": "union", "misalign_mle": True}},
    # span flagging, and no MLE on a negative answer's unflagged tokens in the plain context
    "cut_spans_ul": {"method": "cut", "cut": {"flagging": "spans", "misalign_mle": False}},
    # span flagging trained on each instruction's shortest positive only
    "cut_spans_short": {
        "method": "cut",
        "cut": {"flagging": "spans", "misalign_mle": True},
        "selection": {"short_positives": "shortest"},
    },
    "sft": {"method": "sft"},
    "dpo": {"method": "dpo"},
}
DEFAULT_METHODS = "cut_spans_ul,sft,cut_contrast,cut_spans,dpo"
CUTLOOP = str(Path(sys.executable).with_name("cutloop"))


def merged(base: dict, changes: dict) -> dict:
    """`base` with `changes` applied, nested mappings merged key by key."""
    out = dict(base)
    for key, value in changes.items():
        out[key] = merged(base.get(key, {}), value) if isinstance(value, dict) else value
    return out


def seed_changes(base: dict, seed: int) -> dict:
    """Seed k shifts the sampling seed and the training seed by k (k = 0: the base)."""
    sampling = base.get("generator", {}).get("sampling", {})
    return {
        "generator": {"sampling": {"seed": sampling.get("seed", 0) + seed}},
        "cut": {"seed": base.get("cut", {}).get("seed", 42) + seed},
    }


def variant_config(base: dict, method: str, seed: int) -> dict:
    """The base campaign with the method's and the seed's changes, named by them and a
    digest of the settings (the same settings resume the stored campaign); the base
    itself under its own name."""
    config = merged(merged(base, VARIANTS[method]), seed_changes(base, seed))
    if config == base:  # the base campaign itself (`make demo`'s, in the same store)
        return base
    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:8]
    return {**config, "name": f"{base['name']}-{method}-s{seed}-{digest}"}


def leaves(changes: dict) -> int:
    return sum(leaves(v) if isinstance(v, dict) else 1 for v in changes.values())


def demo_method(settings: dict) -> str | None:
    """The method whose changes the campaign's settings (defaults included) already hold:
    the most specific one when several do."""
    held = [m for m, changes in VARIANTS.items() if merged(settings, changes) == settings]
    return max(held, key=lambda m: leaves(VARIANTS[m]), default=None)


def finished(name: str) -> bool:
    """Whether the store holds the campaign done (rerunning it would only start Ray)."""
    with session_factory(make_engine())() as session:
        campaign = campaign_by_name(session, name)
        return campaign is not None and campaign.status == CampaignStatus.DONE


def campaign_results(name: str) -> dict:
    with session_factory(make_engine())() as session:
        campaign = campaign_by_name(session, name)
        if campaign is None:
            raise SystemExit(f"campaign {name} is not in the store")
        rounds = round_summaries(session, campaign.id)
        last = checkpoint_of(session, campaign.id, rounds[-1].index)
        return {
            "prompt_acc_by_round": [r.prompt_strict for r in rounds],
            "length_by_round": [r.avg_length for r in rounds],
            "mcnemar_b": rounds[-1].mcnemar_b,
            "mcnemar_c": rounds[-1].mcnemar_c,
            "mcnemar_p": rounds[-1].mcnemar_p,
            "checkpoint": last.location if last else None,
        }


def interval95(values: list[float]) -> list[float] | None:
    """Mean ± t(0.975, K-1) · sd / sqrt(K) across seeds; None with fewer than 2."""
    from scipy.stats import t

    if len(values) < 2:
        return None
    half = t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / len(values) ** 0.5
    mean = statistics.fmean(values)
    return [round(mean - half, 2), round(mean + half, 2)]


def summarise(method: str, runs: list[dict]) -> dict:
    """One method's seeds together: means, intervals, the pooled paired test."""
    from scipy.stats import binomtest

    by_round = list(zip(*(r["prompt_acc_by_round"] for r in runs), strict=True))
    gains = [r["prompt_acc_by_round"][-1] - r["prompt_acc_by_round"][0] for r in runs]
    b = sum(r["mcnemar_b"] or 0 for r in runs)
    c = sum(r["mcnemar_c"] or 0 for r in runs)
    lengths = zip(*(r["length_by_round"] for r in runs), strict=True)
    return {
        f"{method}_prompt_acc_by_round": [round(statistics.fmean(v), 2) for v in by_round],
        f"{method}_prompt_acc_ci95_by_round": [interval95(list(v)) for v in by_round],
        f"{method}_gain_r3": round(statistics.fmean(gains), 2),
        f"{method}_gain_r3_ci95": interval95(gains),
        f"{method}_gains_by_seed": [round(g, 2) for g in gains],
        f"{method}_pooled_b_c": [b, c],
        f"{method}_pooled_p": float(binomtest(b, b + c, 0.5).pvalue) if b + c else 1.0,
        f"{method}_length_by_round": [round(statistics.fmean(v), 1) for v in lengths],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="campaigns/demo-cpu.yaml")
    parser.add_argument("--methods", default=DEFAULT_METHODS)
    parser.add_argument("--seeds", type=int, default=3, help="seeds per method (1 or more)")
    parser.add_argument(
        "--seeds-for", default="", help="method=K pairs overriding --seeds, e.g. dpo=1"
    )
    args = parser.parse_args()
    seeds_for = dict(pair.split("=") for pair in args.seeds_for.split(",") if pair)

    campaign = load_campaign(args.config)
    base = campaign.model_dump(mode="json", by_alias=True, exclude_unset=True)
    work = cutloop_home() / "efficacy"
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    settings = campaign.model_dump(mode="json", by_alias=True)
    line: dict = {"config": args.config, "demo_method": demo_method(settings), "seeds": args.seeds}
    methods = args.methods.split(",")
    seeds = {m: int(seeds_for.get(m, args.seeds)) for m in methods}
    runs: dict[str, list[dict]] = {m: [] for m in methods}
    # Seed-major: an interrupted bench leaves every method with nearly as many seeds.
    for seed in range(max(seeds.values())):
        for method in (m for m in methods if seed < seeds[m]):
            config = variant_config(base, method, seed)
            if not finished(config["name"]):
                path = work / f"{config['name']}.yaml"
                path.write_text(yaml.safe_dump(config, sort_keys=False))
                run = subprocess.run([CUTLOOP, "run", str(path)], stdout=subprocess.DEVNULL)
                if run.returncode != 0:
                    raise SystemExit(f"{method} seed {seed}: cutloop run {path} failed")
            runs[method].append(campaign_results(config["name"]))
            print(f"{method} s{seed}: {json.dumps(runs[method][-1])}", file=sys.stderr, flush=True)
    line["seeds_by_method"] = {m: len(r) for m, r in runs.items()}
    for method in methods:
        line |= summarise(method, runs[method])
    if line["demo_method"] in runs:
        line["demo_checkpoint"] = runs[line["demo_method"]][0]["checkpoint"]
    line["minutes"] = round((time.perf_counter() - started) / 60, 1)
    print(json.dumps(line))


if __name__ == "__main__":
    main()
