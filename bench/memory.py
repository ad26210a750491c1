"""Memory of the demo campaign and of one training step, CUT vs TRL's DPO. One JSON line:

- demo_peak_gb: `cutloop run campaigns/demo-cpu.yaml` with an empty CUTLOOP_HOME (the
  model linked in), peak of the summed PSS of its whole process tree (driver, Ray,
  vLLM engine, trainer), sampled every 2 s (sampling costs CPU); with its wall time.
  Its round table is printed on stderr.
- cut_step_peak_gb / dpo_step_peak_gb: one optimizer step on the same 8 negative
  examples with ~600-token responses, SmolLM2, LoRA, the demo's precision and
  checkpointing; CUT with the demo's token budget, DPO (chosen = another response of
  the same length) with TRL's defaults. Each case runs in its own process: peak RSS.
- cut_step_peak_gb_by_tokens: peak of one CUT forward/backward pass against the tokens
  it runs, with and without gradient checkpointing: memory grows linearly with tokens,
  so the budget bounds it.

    .venv/bin/python bench/memory.py [--skip-demo]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from train_step import peak_rss_mb, synthetic_examples  # bench/ is sys.path[0]

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "campaigns" / "demo-cpu.yaml"
RESPONSE_WORDS = 520  # ~600 SmolLM2 tokens
PAIRS_PER_PASS = {"gc": (1, 2, 3, 6), "nogc": (1, 2, 3)}  # ~1200 tokens a pair


def demo_cut_config(**changes):
    from orchestrator.config import load_campaign

    return load_campaign(DEMO).cut.model_copy(update={"align_p_ratio": None, **changes})


def tree_pss_bytes(root: psutil.Process) -> int:
    total = 0
    for process in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):  # gone meanwhile
            total += process.memory_full_info().pss
    return total


def run_demo(model_dir: str) -> dict:
    with tempfile.TemporaryDirectory() as home:
        (Path(home) / "models").mkdir()
        (Path(home) / "models" / "smollm2").symlink_to(model_dir)
        env = {**os.environ, "CUTLOOP_HOME": home, "RAY_AUTH_MODE": "disabled"}
        env.pop("CUTLOOP_DATABASE_URL", None)
        started = time.monotonic()
        command = [str(Path(sys.executable).with_name("cutloop")), "run", str(DEMO)]
        process = subprocess.Popen(  # its progress and final table go to stderr
            command, env=env, stdout=sys.stderr, start_new_session=True
        )
        peak, root = 0, psutil.Process(process.pid)
        while process.poll() is None:
            peak = max(peak, tree_pss_bytes(root))
            time.sleep(2.0)  # sampling interval: reading smaps of ~15 processes costs CPU
        return {
            "demo_peak_gb": peak / 2**30,
            "demo_wall_s": time.monotonic() - started,
            "demo_rc": process.returncode,
        }


def cut_pass(model_dir: str, n: int = 8, one_pass: bool = False, **changes) -> dict:
    """One optimizer step of CUT on `n` examples; with `one_pass`, all in one forward
    pass whatever the demo's token budget."""
    from cut.batching import micro_batches, packed_length
    from cut.modeling import load_policy
    from cut.trainer import example_builder, train_cut

    examples = synthetic_examples(n, RESPONSE_WORDS)
    model, tokenizer = load_policy(model_dir, demo_cut_config())
    if one_pass:
        changes["max_tokens_per_micro_batch"] = 2**20
    config = demo_cut_config(batch_size=n, micro_batch_size=n, **changes)
    items = example_builder(tokenizer, config).build(examples).items
    passes = micro_batches(items, config.micro_batch_size, config.max_tokens_per_micro_batch)
    _, result = train_cut(model, tokenizer, examples, config)
    return {
        "peak_gb": peak_rss_mb() / 1024,
        "seconds": result.steps[0].seconds,
        "largest_pass_tokens": max(len(p) * packed_length(p[0]) for p in passes),
        "response_tokens": result.steps[0].n_response_tokens,
    }


def dpo_step(model_dir: str) -> dict:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    from cut.modeling import lora_config, lora_targets
    from cut.precision import autocast_dtype
    from cut.templates import select_template

    cut = demo_cut_config()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    template = select_template("auto", tokenizer)
    rejected = synthetic_examples(8, RESPONSE_WORDS)
    chosen = rejected[1:] + rejected[:1]  # other responses of the same length
    data = Dataset.from_list(
        [
            {"prompt": template.plain(r.instruction), "chosen": c.response, "rejected": r.response}
            for r, c in zip(rejected, chosen, strict=True)
        ]
    )
    bf16 = autocast_dtype(cut.precision, torch.device("cpu")) == torch.bfloat16
    with tempfile.TemporaryDirectory() as out:
        args = DPOConfig(
            output_dir=out,
            per_device_train_batch_size=8,
            max_steps=1,
            learning_rate=1e-5,
            bf16=bf16,
            use_cpu=True,
            report_to=[],
            save_strategy="no",
            max_length=2048,
            gradient_checkpointing=cut.gradient_checkpointing,
            dataloader_num_workers=0,
            disable_tqdm=True,
        )
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
        started = time.perf_counter()
        DPOTrainer(
            model=model,
            args=args,
            train_dataset=data,
            processing_class=tokenizer,
            peft_config=lora_config(cut, lora_targets(model, cut)),
        ).train()
    return {"peak_gb": peak_rss_mb() / 1024, "seconds": time.perf_counter() - started}


def child(case: str, model_dir: str) -> dict:
    if case == "dpo":
        return dpo_step(model_dir)
    if case == "cut":
        return cut_pass(model_dir)
    checkpointing, pairs = case.split(":")  # "gc:2" / "nogc:2": one pass of 2 pairs
    return cut_pass(model_dir, int(pairs), True, gradient_checkpointing=checkpointing == "gc")


def in_child(case: str) -> dict:
    command = [sys.executable, __file__, "--case", case]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"[bench] {case}: {result}", file=sys.stderr, flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-demo", action="store_true", help="only the training steps")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    from orchestrator.models import fetch_bundled

    model_dir = str(fetch_bundled("smollm2"))
    if args.case:  # a child process: one case, one JSON object
        print(json.dumps(child(args.case, model_dir)))
        return
    cut, dpo = in_child("cut"), in_child("dpo")
    out = {
        "cut_step_peak_gb": cut["peak_gb"],
        "dpo_step_peak_gb": dpo["peak_gb"],
        "dpo_over_cut_peak": dpo["peak_gb"] / cut["peak_gb"],
        "cut_step_s": cut["seconds"],
        "dpo_step_s": dpo["seconds"],
        "cut_step_response_tokens": cut["response_tokens"],
        "cut_step_largest_pass_tokens": cut["largest_pass_tokens"],
    }
    table = {}
    for checkpointing, sizes in PAIRS_PER_PASS.items():
        for pairs in sizes:
            r = in_child(f"{checkpointing}:{pairs}")
            table.setdefault(checkpointing, []).append(
                {
                    "tokens": r["largest_pass_tokens"],
                    "peak_gb": round(r["peak_gb"], 3),
                    "s": round(r["seconds"], 1),
                }
            )
    out["cut_step_peak_gb_by_tokens"] = table
    if not args.skip_demo:
        out |= run_demo(model_dir)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
