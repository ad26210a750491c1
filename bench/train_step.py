"""One optimizer step of CUT vs TRL's DPOTrainer on the same examples, SmolLM2-135M, CPU.

CUT steps on 8 negative examples (an Align-N and a Misalign row each), full fine-tuning
and LoRA, in fp32 and under bf16 autocast, and full fp32 with glibc's allocator left as
it is (`_heap`: `cut.return_freed_memory: false`, faster, a higher peak), with the
decoder layers compiled (`_compiled`: `cut.torch_compile: true`), or both; DPO steps on
the same 8 examples as preference pairs (chosen / rejected rows of the same length,
reference model recomputed each step: TRL's default). Each case runs in its own
process, so peak RSS is that case's own. bf16 cases are skipped, with the reason in the
JSON line, on a CPU whose bf16 matmuls are not faster than its fp32 ones. One step is
measured per case after a warm-up that compiles where a case compiles (`--steps` for
more; a step takes 25-90 s on a 2-core AVX2 machine: the default cases took 6.6 minutes
on a Zen 2 EPYC, bf16 skipped); `--only` picks any. Prints one JSON line.

    .venv/bin/python bench/train_step.py [--steps 1] [--only CASE ...]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

N_EXAMPLES = 8
PROMPT_WORDS, RESPONSE_WORDS, JUDGMENT_WORDS = 70, 150, 25  # ~256-token rows with SmolLM2
WORDS = (
    "the model answer step first second value because result number check error sum list "
    "water planet river city year people number table chart light sound energy system data"
).split()


def synthetic_examples(n: int = N_EXAMPLES, response_words: int = RESPONSE_WORDS):
    from cut.examples import JudgedExample, Polarity

    rng = random.Random(0)

    def text(words: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(words))

    return [
        JudgedExample(
            instruction=text(PROMPT_WORDS),
            response=text(response_words),
            judgment="The response is wrong: " + text(JUDGMENT_WORDS),
            polarity=Polarity.NEGATIVE,
        )
        for _ in range(n)
    ]


def peak_rss_mb() -> float:
    from cut.memory import peak_rss_bytes

    return peak_rss_bytes() / 2**20


def matmul_peak_gflops(dtype: torch.dtype, size: int = 2048, repeats: int = 10) -> float:
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9


def step_flops(model, sequences: list[tuple[int, int]], lora: bool) -> float:
    """FLOPs one step needs, over the (length, response tokens) of the sequences actually
    run (packed: a pair's shared prefix counted once): matmuls forward (2 per weight per
    token) and backward (2 more for input grads, 2 more for weight grads unless frozen),
    the output layer only where a response token is predicted, attention scores included.
    Recomputation is not counted: this is model FLOPs utilisation, not hardware's."""
    config = model.config
    head = config.vocab_size * config.hidden_size
    body = sum(p.numel() for n, p in model.named_parameters() if p.dim() == 2) - head
    if not config.tie_word_embeddings:
        body -= config.vocab_size * config.hidden_size  # input embeddings do no matmul
    passes = 4 if lora else 6
    total = 0.0
    for length, response in sequences:
        total += passes * (body * length + head * response)
        total += passes * 2 * config.num_hidden_layers * length**2 * config.hidden_size
    return total


def run_cut(
    model_dir: str,
    finetuning: str,
    precision: str,
    steps: int,
    return_freed: bool = True,
    compiled: bool = False,
) -> dict:
    from cut.batching import collate
    from cut.config import CUTConfig
    from cut.evaluate import measure
    from cut.modeling import load_policy
    from cut.trainer import example_builder, train_cut

    examples = synthetic_examples()
    config = CUTConfig(
        finetuning=finetuning, precision=precision, epochs=steps + 1, batch_size=N_EXAMPLES,
        micro_batch_size=N_EXAMPLES, align_p_ratio=None, max_length=1024, lora_dropout=0.0,
        learning_rate=1e-5 if finetuning == "full" else 4e-4, return_freed_memory=return_freed,
        torch_compile=compiled,
    )  # fmt: skip
    model, tokenizer = load_policy(model_dir, config)
    start_loss = measure(model, tokenizer, examples, config).loss
    items = example_builder(tokenizer, config).build(examples)
    rows = [(len(r.input_ids), r.response_length) for i in items.items for r in i.rows]
    packed = [collate([i], tokenizer.pad_token_id) for i in items.items]
    sequences = [(b.n_packed_tokens, b.target_ids.numel()) for b in packed]
    flops = step_flops(model, sequences, lora=finetuning == "lora")
    _, result = train_cut(model, tokenizer, examples, config)
    seconds = statistics.median(s.seconds for s in result.steps[1:])  # first step warms up
    return {
        "s_per_step": seconds,
        "first_step_s": result.steps[0].seconds,  # the warm-up: compiling, where on
        "tokens_per_s": result.steps[-1].n_tokens / seconds,
        "tokens_per_row": statistics.mean(length for length, _ in rows),
        "packed_over_row_tokens": sum(n for n, _ in sequences) / sum(n for n, _ in rows),
        "rows": len(rows),
        "first_step_loss": result.steps[0].loss,
        "loss_before": start_loss,
        "flops_per_step": flops,
        "peak_rss_mb": peak_rss_mb(),
    }


def run_dpo(model_dir: str, precision: str, steps: int) -> dict:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import DPOConfig, DPOTrainer

    from cut.templates import select_template

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    template = select_template("auto", tokenizer)
    examples = synthetic_examples()
    chosen = synthetic_examples()[::-1]  # other responses of the same length
    data = Dataset.from_list(
        [
            {"prompt": template.plain(e.instruction), "chosen": c.response, "rejected": e.response}
            for e, c in zip(examples, chosen, strict=True)
        ]
    )
    times: list[float] = []

    class Timer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            self.started = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            times.append(time.perf_counter() - self.started)

    with tempfile.TemporaryDirectory() as out:
        args = DPOConfig(
            output_dir=out, per_device_train_batch_size=N_EXAMPLES, max_steps=steps + 1,
            learning_rate=1e-6, bf16=precision == "bf16", use_cpu=True, report_to=[],
            save_strategy="no", logging_steps=10_000, max_length=1024,
            dataloader_num_workers=0, disable_tqdm=True,
        )  # fmt: skip
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
        trainer = DPOTrainer(
            model=model, args=args, train_dataset=data, processing_class=tokenizer,
            callbacks=[Timer()],
        )  # fmt: skip
        trainer.train()
    seconds = statistics.median(times[1:])
    return {"s_per_step": seconds, "peak_rss_mb": peak_rss_mb()}


CASES = {
    "cut_full_fp32": lambda d, s: run_cut(d, "full", "fp32", s),
    "cut_full_fp32_heap": lambda d, s: run_cut(d, "full", "fp32", s, return_freed=False),
    "cut_full_fp32_compiled": lambda d, s: run_cut(d, "full", "fp32", s, compiled=True),
    "cut_full_fp32_compiled_heap": lambda d, s: run_cut(
        d, "full", "fp32", s, return_freed=False, compiled=True
    ),
    "cut_lora_fp32": lambda d, s: run_cut(d, "lora", "fp32", s),
    "cut_full_bf16": lambda d, s: run_cut(d, "full", "bf16", s),
    "cut_lora_bf16": lambda d, s: run_cut(d, "lora", "bf16", s),
    "dpo_full_fp32": lambda d, s: run_dpo(d, "fp32", s),
    "dpo_full_bf16": lambda d, s: run_dpo(d, "bf16", s),
}


# the defaults, the fast settings, bf16 (skipped where slow) and DPO; the rest by --only
# (each adds 1-2.5 minutes on a 2-core AVX2 machine)
DEFAULT_CASES = [
    "cut_full_fp32", "cut_full_fp32_compiled_heap", "cut_full_bf16", "dpo_full_fp32",
]  # fmt: skip
BF16_FASTER = 1.2  # bf16 matmuls at least this much faster than fp32, else bf16 is skipped
PROBE_SIZE = 256  # of the matmuls that decide it


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1, help="measured steps (after 1 warm-up)")
    parser.add_argument("--case", choices=sorted(CASES), help=argparse.SUPPRESS)
    parser.add_argument("--only", nargs="*", choices=sorted(CASES), help="run only these cases")
    args = parser.parse_args()
    torch.set_num_threads(2)
    from orchestrator.models import fetch_bundled

    model_dir = str(fetch_bundled("smollm2"))
    if args.case:  # a child process: one case, one JSON object
        print(json.dumps(CASES[args.case](model_dir, args.steps)))
        return

    started = time.perf_counter()
    peaks, skipped = {"fp32": matmul_peak_gflops(torch.float32)}, {}
    # probed small first: a CPU without bf16 instructions takes seconds for one large matmul
    probe = {d: matmul_peak_gflops(getattr(torch, d), PROBE_SIZE, repeats=50)
             for d in ("float32", "bfloat16")}  # fmt: skip
    if probe["bfloat16"] < BF16_FASTER * probe["float32"]:
        reason = (f"bf16 matmuls at {probe['bfloat16']:.1f} GFLOP/s are not {BF16_FASTER}x the "
                  f"fp32 ones ({probe['float32']:.0f}) on this CPU")  # fmt: skip
        skipped = {n: reason for n in args.only or DEFAULT_CASES if n.endswith("_bf16")}
    else:
        peaks["bf16"] = matmul_peak_gflops(torch.bfloat16)
    results = {}
    for name in [n for n in args.only or DEFAULT_CASES if n not in skipped]:
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        command = [sys.executable, __file__, "--case", name, "--steps", str(args.steps)]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        results[name] = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"[bench] {name}: {results[name]}", file=sys.stderr, flush=True)
    out = summarise(results, peaks) | {"skipped": skipped, f"probe_gflops_{PROBE_SIZE}": probe}
    print(json.dumps(out | {"bench_minutes": (time.perf_counter() - started) / 60}))


def summarise(results: dict, peaks: dict[str, float]) -> dict:
    """Per case and across cases; `peaks` holds bf16's only where bf16 ran (else no MFU)."""
    out: dict = {f"matmul_peak_gflops_{p}": gflops for p, gflops in peaks.items()}
    for name, r in results.items():
        out[f"{name}_s_per_step"] = r["s_per_step"]
        out[f"{name}_peak_rss_mb"] = r["peak_rss_mb"]
        if "flops_per_step" in r:
            precision = "bf16" if "bf16" in name else "fp32"
            out[f"{name}_mfu"] = r["flops_per_step"] / r["s_per_step"] / (peaks[precision] * 1e9)
            out[f"{name}_tokens_per_s"] = r["tokens_per_s"]
            out[f"{name}_first_step_s"] = r["first_step_s"]
            out[f"{name}_first_step_loss"] = r["first_step_loss"]
    # headline: full fine-tuning in fp32 (DPO's fp32 numbers in the issue), same examples
    if {"cut_full_fp32", "dpo_full_fp32"} <= results.keys():
        cut, dpo = results["cut_full_fp32"], results["dpo_full_fp32"]
        out |= {
            "cut_s_per_step": cut["s_per_step"],
            "dpo_s_per_step": dpo["s_per_step"],
            "ratio_dpo_over_cut": dpo["s_per_step"] / cut["s_per_step"],
            "cut_tokens_per_s": cut["tokens_per_s"],
            "mfu": out["cut_full_fp32_mfu"],
            "peak_rss_mb": cut["peak_rss_mb"],
            "dpo_peak_rss_mb": dpo["peak_rss_mb"],
            "tokens_per_row": cut["tokens_per_row"],
            "packed_over_row_tokens": cut["packed_over_row_tokens"],
        }
    for name in (n for n in results if n.startswith("cut_full_fp32_")):  # _heap, _compiled...
        variant, seconds = name.removeprefix("cut_full_fp32_"), results[name]["s_per_step"]
        if "dpo_full_fp32" in results:
            out[f"ratio_dpo_over_cut_{variant}"] = results["dpo_full_fp32"]["s_per_step"] / seconds
        if "cut_full_fp32" in results:  # over the defaults
            out[f"{variant}_speedup"] = results["cut_full_fp32"]["s_per_step"] / seconds
    if {"cut_full_bf16", "dpo_full_bf16"} <= results.keys():
        out["ratio_dpo_over_cut_bf16"] = (
            results["dpo_full_bf16"]["s_per_step"] / results["cut_full_bf16"]["s_per_step"]
        )
    if {"cut_full_fp32", "cut_full_bf16"} <= results.keys():
        fp32, bf16 = results["cut_full_fp32"], results["cut_full_bf16"]
        out["bf16_speedup"] = fp32["s_per_step"] / bf16["s_per_step"]
        out["bf16_first_loss_rel_diff"] = abs(bf16["first_step_loss"] / fp32["first_step_loss"] - 1)
    return out


if __name__ == "__main__":
    main()
