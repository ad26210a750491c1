"""CUT training configuration: one validated, documented place for every knob.

Defaults follow the paper's online setting (docs/cut.md): lambda 1.1, alpha 1, LoRA
r=16/alpha=16/dropout 0.05 on the MLP projections, lr 4e-4, cosine schedule, one epoch,
global batch 8. Use lambda 1.2 and alpha 0.5 for offline Shepherd-style data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cut.examples import MisalignContext
from cut.templates import TemplateName

Precision = Literal["auto", "fp32", "bf16"]
Finetuning = Literal["lora", "full"]
Method = Literal["cut", "sft", "dpo"]
Flagging = Literal["contrast", "spans", "union"]


@dataclass(frozen=True)
class LossWeights:
    """What `cut.loss.cut_loss` reads of the config (cut/loss.py gives the meaning);
    here, not there, so validating a config imports no torch."""

    lam: float = 1.1  # lambda: flag a token when p_al / p_mis exceeds it
    alpha: float = 1.0  # weight of the unlikelihood term
    gamma: float | None = None  # paper-only dynamic weight p_al^gamma; None = off
    flag_eos: bool = True  # may a row's final (EOS) token be flagged
    flagging: Flagging = "contrast"  # which Misalign tokens get unlikelihood
    misalign_mle: bool = True  # MLE on unflagged Misalign tokens; False: no loss on them


class CUTConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    # --- objective -----------------------------------------------------------------
    method: Method = Field(
        "cut",
        description="cut: the paper's objective; sft: MLE on the positive answers only "
        "(rejection-sampling fine-tuning); dpo: pairs of a positive and a negative answer "
        "to one instruction, the starting weights as reference",
    )
    lam: float = Field(
        1.1, alias="lambda", gt=0, description="flag an answer token when p_al/p_mis exceeds "
        "it (the paper: 1.1 online, 1.2 offline); higher flags fewer tokens",
    )  # fmt: skip
    alpha: float = Field(
        1.0, ge=0, description="weight of the unlikelihood term (0.5 offline); 0 keeps only "
        "the MLE terms",
    )  # fmt: skip
    gamma: float | None = Field(
        None, gt=0, description="paper-only dynamic weight p_al^gamma on flagged tokens; None=off"
    )
    flag_eos: bool = Field(
        True,
        description="may the EOS ending a negative answer be flagged (the reference code: "
        "yes); false keeps MLE on it, so unlikelihood never teaches the policy not to stop",
    )
    flagging: Flagging = Field(
        "contrast",
        description="which Misalign tokens get unlikelihood: contrast (the paper's: "
        "p_al/p_mis > lambda), spans (the tokens overlapping a span of the answer the "
        "judgment faults; none where it gives none), union (either)",
    )
    misalign_mle: bool = Field(
        True,
        description="MLE on a negative answer's unflagged Misalign tokens (the paper's: "
        "they are taken to be right); false gives them no loss, so the plain context "
        "learns from a negative answer only where it is flagged",
    )
    dpo_beta: float = Field(0.1, gt=0, description="dpo: the inverse temperature beta")
    misalign_context: MisalignContext = Field(
        "plain", description="plain(x) (reference code) or judged(x, fake positive) (paper)"
    )

    # --- examples ------------------------------------------------------------------
    template: TemplateName = Field(
        "auto", description="prompt format: auto is chat when the tokenizer has a chat "
        "template, else alpaca; keep it as generator.template",
    )  # fmt: skip
    max_length: int = Field(
        2048, ge=8, description="tokens per row; longer prompts lose tokens from the left, "
        "answers are never cut",
    )  # fmt: skip
    align_p_ratio: float | None = Field(
        0.25, ge=0, description="keep int(ratio * n_negative) positives; None keeps all"
    )

    # --- parameters trained --------------------------------------------------------
    finetuning: Finetuning = Field(
        "lora", description="lora: low-rank adapters, merged into each checkpoint; full: "
        "every weight (several times the memory)",
    )  # fmt: skip
    lora_r: int = Field(16, ge=1, description="LoRA rank: more trains more parameters")
    lora_alpha: int = Field(16, ge=1, description="LoRA scale: the update is times alpha / r")
    lora_dropout: float = Field(0.05, ge=0, lt=1, description="dropout on the LoRA input")
    lora_target_modules: tuple[str, ...] | None = Field(
        None,
        description="the layers LoRA adapts, by name (a name matches every layer whose path "
        "ends with it); None: the MLP projections gate_proj/up_proj/down_proj where the model "
        "has all three (the paper's), else every linear layer but the output head",
    )

    # --- optimisation --------------------------------------------------------------
    learning_rate: float = Field(
        4e-4, gt=0, description="peak AdamW learning rate, cosine schedule (the paper's for "
        "LoRA; lower it for full fine-tuning)",
    )  # fmt: skip
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay")
    warmup_fraction: float = Field(
        0.0, ge=0, lt=1, description="share of the optimizer steps warming the learning rate up"
    )
    epochs: int = Field(1, ge=1, description="passes over a round's (or a file's) examples")
    max_steps: int | None = Field(
        None, ge=1, description="stop after this many optimizer steps (None: all epochs)"
    )
    batch_size: int = Field(8, ge=1, description="judged examples per optimizer step")
    micro_batch_size: int = Field(8, ge=1, description="examples per forward pass, at most")
    max_tokens_per_micro_batch: int = Field(
        2048,
        ge=8,
        description="tokens run per forward pass (rows x longest packed pair, padding "
        "included): bounds activation memory; a pair is never split, so one must fit "
        "(2048: SmolLM2's step fits the default trainer.memory_gb without checkpointing)",
    )
    max_grad_norm: float | None = Field(
        1.0, gt=0, description="clip the gradient's norm to this; null: no clipping"
    )
    seed: int = Field(
        42, description="example order, down-sampling of positives and dropout; a campaign "
        "sets it from its own seed unless given",
    )  # fmt: skip

    # --- execution -----------------------------------------------------------------
    precision: Precision = Field(
        "auto", description="auto: bf16 autocast where bf16 matmuls are faster than fp32; "
        "set fp32 or bf16 for results that repeat across machines",
    )  # fmt: skip
    return_freed_memory: bool = Field(
        True, description="on a CPU, hand freed activations back to the operating system "
        "(glibc's mmap threshold fixed at 64 KiB) so the step's memory stays within its "
        "budget; false: steps 1.2-1.5x faster (SmolLM2, full fp32, 2-core Xeon and EPYC) "
        "with a ~22% higher peak",
    )  # fmt: skip
    gradient_checkpointing: bool = Field(
        False, description="recompute each layer in backward: ~1/10 of the activation "
        "memory for 10-40% more step time; turn it on when training memory is tight",
    )  # fmt: skip
    torch_compile: bool = Field(
        False, description="compile each decoder layer with torch.compile (inductor) "
        "before training: fewer, fused temporaries, so faster steps and a lower peak at the "
        "same losses (measured on CPU: docs/performance.md); the first steps pay the compile "
        "(10-30 s for SmolLM2 on 2 cores, cached on disk for later rounds); on a CPU it "
        "needs a C++ compiler (g++, or $CXX)",
    )  # fmt: skip
    logit_chunk_size: int = Field(
        256, ge=1, description="answer positions whose logits are formed at once; lower it "
        "to save memory with a large vocabulary",
    )  # fmt: skip
    save_state_every: int | None = Field(
        None, ge=1, description="optimizer steps between resumable training states; set it "
        "for long rounds, so that a crash resumes mid-round",
    )  # fmt: skip

    @property
    def loss_weights(self) -> LossWeights:
        return LossWeights(
            self.lam, self.alpha, self.gamma, self.flag_eos, self.flagging, self.misalign_mle
        )

    @model_validator(mode="after")
    def _micro_batch_fits(self) -> Self:
        if self.micro_batch_size > self.batch_size:
            raise ValueError(
                f"micro_batch_size ({self.micro_batch_size}) must not exceed "
                f"batch_size ({self.batch_size})"
            )
        return self
