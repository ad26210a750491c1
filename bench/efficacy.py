"""Does the loop align? The demo campaign run with each method on the same prompts, judge
and seeds — cut (the demo's settings), sft (MLE on the positives), alpha0 (cut with
alpha = 0) and dpo — and one JSON line: per method, held-out IFEval prompt-level strict
accuracy by round (round 0 first), decisive win rate against round 0 by round (round 1
first), average answer length by round; CUT's McNemar p (last round vs round 0), its
final checkpoint and the minutes each method took in this invocation. A campaign already
in the store is resumed (a finished one costs nothing), so an interrupted bench goes on.

    .venv/bin/python bench/efficacy.py [--config campaigns/demo-cpu.yaml] [--methods cut,sft]
"""

from __future__ import annotations

import argparse
import hashlib
import json
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
from store.summaries import round_summaries
from store.training import checkpoint_of

VARIANTS = {
    "cut": {},
    "sft": {"method": "sft"},
    "alpha0": {"cut": {"alpha": 0.0}},
    "dpo": {"method": "dpo"},
}
CUTLOOP = str(Path(sys.executable).with_name("cutloop"))


def variant_config(base: dict, method: str) -> dict:
    """The base campaign with the method's changes, named by method and settings: the same
    settings resume the stored campaign, changed ones start a new one."""
    changes = VARIANTS[method]
    config = {**base, **changes}
    if "cut" in changes:
        config["cut"] = {**base.get("cut", {}), **changes["cut"]}
    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:8]
    return {**config, "name": f"{base['name']}-{method}-{digest}"}


def results(name: str) -> dict:
    with session_factory(make_engine())() as session:
        campaign = campaign_by_name(session, name)
        if campaign is None:
            raise SystemExit(f"campaign {name} is not in the store")
        rounds = round_summaries(session, campaign.id)
        last = checkpoint_of(session, campaign.id, rounds[-1].index)
        return {
            "prompt_acc_by_round": [r.prompt_strict for r in rounds],
            "win_rate_by_round": [r.decisive_win_rate for r in rounds[1:]],
            "length_by_round": [r.avg_length for r in rounds],
            "mcnemar_p": rounds[-1].mcnemar_p,
            "checkpoint": last.location if last else None,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="campaigns/demo-cpu.yaml")
    parser.add_argument("--methods", default=",".join(VARIANTS))
    args = parser.parse_args()

    base = load_campaign(args.config).model_dump(mode="json", by_alias=True, exclude_unset=True)
    work = cutloop_home() / "efficacy"
    work.mkdir(parents=True, exist_ok=True)
    line: dict = {"config": args.config}
    minutes = {}
    for method in args.methods.split(","):
        config = variant_config(base, method)
        path = work / f"{config['name']}.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        started = time.perf_counter()
        run = subprocess.run([CUTLOOP, "run", str(path)], stdout=subprocess.DEVNULL)
        minutes[method] = round((time.perf_counter() - started) / 60, 1)
        if run.returncode != 0:
            raise SystemExit(f"{method}: cutloop run {path} failed (exit {run.returncode})")
        found = results(config["name"])
        line[f"{method}_campaign"] = config["name"]
        for key in ("prompt_acc_by_round", "win_rate_by_round", "length_by_round"):
            line[f"{method}_{key}"] = found[key]
        if method == "cut":
            line["cut_mcnemar_p"] = found["mcnemar_p"]
            line["cut_checkpoint"] = found["checkpoint"]
        print(f"{method}: {json.dumps(found)}", file=sys.stderr, flush=True)
    line["minutes_per_method"] = minutes
    print(json.dumps(line))


if __name__ == "__main__":
    main()
