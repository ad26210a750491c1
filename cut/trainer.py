"""The CUT training loop (Xu et al., "Reasons to Reject? Aligning Language Models with
Judgments", arXiv 2312.14591).

Example:
    >>> from transformers import AutoModelForCausalLM, AutoTokenizer
    >>> from cut.config import CUTConfig
    >>> from cut.examples import JudgedExample, Polarity
    >>> from cut.trainer import train_cut
    >>> model = AutoModelForCausalLM.from_pretrained(path)
    >>> tokenizer = AutoTokenizer.from_pretrained(path)
    >>> data = [JudgedExample("What is 7 x 8?", "54", "Wrong: 7 x 8 is 56.", Polarity.NEGATIVE)]
    >>> model, result = train_cut(model, tokenizer, data, CUTConfig(finetuning="full"))
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from transformers import get_cosine_schedule_with_warmup

from cut.allocator import return_freed_memory
from cut.batching import (
    MicroBatch,
    check_fits,
    chunked,
    collate,
    micro_batches,
    response_token_count,
)
from cut.checkpoint import load_training_state, save_training_state
from cut.config import CUTConfig
from cut.dpo import build_pairs, dpo_loss, reference_logprobs
from cut.examples import ExampleBuilder, JudgedExample, TrainingItem, downsample_positives
from cut.loss import LossOutput, cut_loss
from cut.modeling import output_weight, prepare_for_training, response_logprobs
from cut.precision import autocast, autocast_dtype
from cut.reports import FlaggedTokens, StepMetrics, TrainResult
from cut.templates import select_template

logger = logging.getLogger(__name__)

StepCallback = Callable[[StepMetrics], None]


def example_builder(tokenizer, config: CUTConfig) -> ExampleBuilder:
    template = select_template(config.template, tokenizer)
    return ExampleBuilder(tokenizer, template, config.max_length, config.misalign_context)


def plan_steps(items: Sequence[TrainingItem], config: CUTConfig) -> list[list[TrainingItem]]:
    """Every optimizer step's examples, all epochs, shuffled per epoch from the seed, so a
    resumed run sees exactly the batches it would have seen."""
    steps: list[list[TrainingItem]] = []
    for epoch in range(config.epochs):
        order = list(items)
        random.Random(config.seed + epoch).shuffle(order)
        steps.extend(chunked(order, config.batch_size))
    return steps[: config.max_steps]


def flagged_report(batch: MicroBatch, out: LossOutput, tokenizer) -> list[FlaggedTokens]:
    """Which Misalign tokens were flagged, per negative example of the micro-batch."""
    reports = []
    for span in batch.misalign_spans:
        window = slice(span.start, span.start + span.length)
        positions = out.flagged[window].nonzero().squeeze(1).tolist()
        ids = batch.target_ids[window][positions].tolist()
        reports.append(
            FlaggedTokens(
                example_index=span.example_index,
                response_length=span.length,
                positions=positions,
                token_ids=ids,
                texts=[tokenizer.decode([token]) for token in ids],
                ratios=out.ratio[window][positions].tolist(),
            )
        )
    return reports


@dataclass
class StepTotals:
    normalizer: int  # response tokens in the step (DPO: pairs)
    mle: float = 0.0
    unlikelihood: float = 0.0
    preference: float = 0.0
    n_flagged: int = 0
    n_misalign: int = 0
    n_tokens: int = 0
    flagged: list[FlaggedTokens] = field(default_factory=list)


def accumulate_gradients(
    model: nn.Module,
    tokenizer,
    step_items: Sequence[TrainingItem],
    config: CUTConfig,
    amp_dtype: torch.dtype | None,
    pad_id: int,
    reference: dict[int, torch.Tensor] | None = None,
) -> StepTotals:
    """Forward and backward over the step's micro-batches, adding into `.grad`.

    Every micro-batch's loss is divided by the response tokens (DPO: the pairs) of the
    *whole step*, so the accumulated gradient does not depend on how the step is split
    into passes. `reference`: DPO's reference log-probabilities by pair."""
    device = output_weight(model).device
    dpo = config.method == "dpo"
    totals = StepTotals(normalizer=len(step_items) if dpo else response_token_count(step_items))
    passes = micro_batches(step_items, config.micro_batch_size, config.max_tokens_per_micro_batch)
    for micro in passes:
        batch = collate(micro, pad_id)
        with autocast(device, amp_dtype):
            logp = response_logprobs(model, batch, config.logit_chunk_size)
        if dpo:
            assert reference is not None
            out = dpo_loss(logp, micro, reference, config.dpo_beta, totals.normalizer)
        else:
            out = cut_loss(logp, batch.targets, config.loss_weights, totals.normalizer)
        out.loss.backward()
        totals.mle += out.mle_sum
        totals.unlikelihood += out.unlikelihood_sum
        totals.preference += out.preference_sum
        totals.n_flagged += int(out.flagged.sum())
        totals.n_misalign += out.n_misalign
        totals.n_tokens += batch.n_tokens
        totals.flagged.extend(flagged_report(batch, out, tokenizer))
    return totals


def training_items(
    builder: ExampleBuilder, examples: Sequence[JudgedExample], config: CUTConfig
) -> tuple[list[TrainingItem], TrainResult]:
    """What `config.method` trains on: cut — every negative and the positives kept by
    align_p_ratio; sft — every positive; dpo — (positive, negative) pairs per instruction."""
    if config.method == "dpo":
        pairs, too_long = build_pairs(builder, examples)
        return pairs, TrainResult(n_pairs=len(pairs), too_long=too_long)
    built = builder.build(examples)
    if config.method == "sft":
        items = [item for item in built.items if not item.is_negative]
    else:
        items = downsample_positives(built.items, config.align_p_ratio, config.seed)
    n_negative = sum(item.is_negative for item in items)
    return items, TrainResult(
        n_align_p=len(items) - n_negative,
        n_negative=n_negative,
        too_long=built.too_long,
        positives_dropped=len(built.items) - len(items),
    )


def train_cut(
    model: nn.Module,
    tokenizer,
    examples: Sequence[JudgedExample],
    config: CUTConfig,
    callback: StepCallback | None = None,
    state_dir: str | Path | None = None,
    resume: bool = False,
) -> tuple[nn.Module, TrainResult]:
    """Train `model` with CUT on judged examples; returns the trained model (a peft model
    for LoRA) and what happened. With `state_dir`, a resumable state is written every
    `config.save_state_every` steps; `resume=True` continues from it."""
    # --- setup: seed, examples, model -----------------------------------------------
    torch.manual_seed(config.seed)
    builder = example_builder(tokenizer, config)
    items, result = training_items(builder, examples, config)
    if result.too_long:
        logger.warning("skipped %d answers longer than max_length", len(result.too_long))
    if not items:
        raise ValueError(f"no trainable examples for method {config.method!r}: none was left")
    check_fits(items, config.max_tokens_per_micro_batch)  # before any training
    if config.return_freed_memory:
        return_freed_memory()

    device = output_weight(model).device
    reference = None
    if config.method == "dpo":  # the starting weights, before any adapter or update
        reference = reference_logprobs(
            model, items, config.micro_batch_size, config.max_tokens_per_micro_batch,
            builder.pad_token_id, config.logit_chunk_size,
        )  # fmt: skip
    model = prepare_for_training(model, config)
    amp_dtype = autocast_dtype(config.precision, device)
    logger.info("precision %s: %s", config.precision, "bf16 autocast" if amp_dtype else "fp32")

    # --- optimizer and schedule -------------------------------------------------------
    steps = plan_steps(items, config)
    steps_per_epoch = math.ceil(len(items) / config.batch_size)  # max_steps cuts the plan only
    trainable = [p for p in model.parameters() if p.requires_grad]
    # fused: one kernel per parameter group, no full-size temporaries at step time
    optimizer = torch.optim.AdamW(
        trainable, lr=config.learning_rate, weight_decay=config.weight_decay, fused=True
    )
    warmup = math.ceil(config.warmup_fraction * len(steps))
    scheduler = get_cosine_schedule_with_warmup(optimizer, warmup, len(steps))
    done = 0
    if resume:
        if state_dir is None:
            raise ValueError("resume=True needs state_dir")
        done, result.flagged = load_training_state(state_dir, model, optimizer, scheduler, config)
        logger.info("resumed at step %d of %d", done, len(steps))

    for index in range(done, len(steps)):
        started = time.perf_counter()
        step_items = steps[index]
        # --- forward/backward per micro-batch; one normaliser for the whole step -------
        totals = accumulate_gradients(
            model, tokenizer, step_items, config, amp_dtype, builder.pad_token_id, reference
        )
        result.flagged.update((r.example_index, r) for r in totals.flagged)

        # --- clip and step ------------------------------------------------------------
        max_norm = config.max_grad_norm if config.max_grad_norm is not None else math.inf
        grad_norm = float(torch.nn.utils.clip_grad_norm_(trainable, max_norm))
        learning_rate = scheduler.get_last_lr()[0]
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)

        # --- report and save ----------------------------------------------------------
        seconds = time.perf_counter() - started
        metrics = StepMetrics(
            step=index + 1,
            total_steps=len(steps),
            epoch=index // steps_per_epoch,
            loss=(totals.mle + totals.unlikelihood + totals.preference) / totals.normalizer,
            mle_loss=totals.mle / totals.normalizer,
            unlikelihood_loss=totals.unlikelihood / totals.normalizer,
            n_flagged=totals.n_flagged,
            flagged_fraction=totals.n_flagged / totals.n_misalign if totals.n_misalign else 0.0,
            n_response_tokens=totals.normalizer,
            n_tokens=totals.n_tokens,
            tokens_per_s=totals.n_tokens / seconds,
            learning_rate=learning_rate,
            grad_norm=grad_norm,
            seconds=seconds,
        )
        result.steps.append(metrics)
        if callback is not None:
            callback(metrics)
        every = config.save_state_every
        if state_dir is not None and every and (index + 1) % every == 0:
            save_training_state(
                state_dir, model, optimizer, scheduler, config, index + 1, result.flagged
            )
    return model, result
