"""A local judge: any causal LM (HF directory or id) writes a judgment and then a
verdict, "Yes." (the response is acceptable) or "No.", which gives the polarity.
Output without a verdict is a failed call, never a judgment. The judge is asked to quote
the faulty text; quotes found in the answer become spans (judge/quotes.py)."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from cut.examples import Polarity
from judge.base import JudgeRequest, JudgmentResult
from judge.quotes import quoted_spans

LOCAL_JUDGE_TEMPLATE = (
    "Below is an instruction that describes a task and a potential response. Evaluate the "
    "response: point out precisely what mistakes it has, quoting each faulty part of the "
    "response verbatim in double quotes, or say that it is perfect. Then, "
    'on a last line, answer whether the response is acceptable with "Yes." or "No.".\n\n'
    "### Instruction:\n{instruction}\n\n### Response:\n{response}\n\n### Judgment:\n"
)
VERDICT = re.compile(r"^(?P<text>.*?)[\s:]*\b(?P<verdict>Yes|No)\.?\s*$", re.DOTALL | re.IGNORECASE)


class LocalJudgeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(
        description="HF model directory or id", examples=["Qwen/Qwen2.5-7B-Instruct"]
    )
    name: str = Field("local", description="judge name stored with each judgment")
    template: str = Field(
        LOCAL_JUDGE_TEMPLATE, description="the prompt, with {instruction} and {response}; "
        "it must ask for a final Yes./No. line",
    )  # fmt: skip
    max_new_tokens: int = Field(256, ge=1, description="longest judgment in tokens")
    batch_size: int = Field(8, ge=1, description="answers judged per forward pass")


@dataclass(frozen=True)
class ParsedJudgment:
    text: str
    polarity: Polarity


def parse_local_judgment(output: str) -> ParsedJudgment | None:
    """'The sum is wrong. No.' -> (text, negative); None when no final Yes/No verdict."""
    match = VERDICT.match(output.strip())
    if not match:
        return None
    verdict = match["verdict"].lower()
    text = match["text"].strip() or ("Perfect." if verdict == "yes" else "")
    if not text:
        return None  # a bare "No." says nothing to learn from
    return ParsedJudgment(text, Polarity.POSITIVE if verdict == "yes" else Polarity.NEGATIVE)


def spans_of(parsed: ParsedJudgment, request: JudgeRequest) -> tuple:
    """A negative judgment's quotes found in the answer."""
    if parsed.polarity != Polarity.NEGATIVE:
        return ()
    return quoted_spans(parsed.text, request.response)


class LocalJudge:
    def __init__(self, config: LocalJudgeConfig, model=None, tokenizer=None) -> None:
        self.config = config
        self.name = config.name
        self._model, self._tokenizer = model, tokenizer

    def _load(self) -> None:
        if self._model is None:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(self.config.model)
            self._model = AutoModelForCausalLM.from_pretrained(self.config.model)
        self._tokenizer.padding_side = "left"  # generation continues every prompt's end
        if self._tokenizer.pad_token_id is None:
            self._tokenizer.pad_token = self._tokenizer.eos_token

    def judge(self, requests: list[JudgeRequest], on_result=None) -> list[JudgmentResult]:
        import torch

        self._load()
        results: list[JudgmentResult] = []
        for start in range(0, len(requests), self.config.batch_size):
            batch = requests[start : start + self.config.batch_size]
            prompts = [
                self.config.template.format(instruction=r.instruction, response=r.response)
                for r in batch
            ]
            inputs = self._tokenizer(prompts, return_tensors="pt", padding=True)
            started = time.perf_counter()
            with torch.no_grad():
                output = self._model.generate(
                    **inputs,
                    max_new_tokens=self.config.max_new_tokens,
                    do_sample=False,
                    pad_token_id=self._tokenizer.pad_token_id,
                )
            latency = (time.perf_counter() - started) / len(batch)
            new_tokens = output[:, inputs["input_ids"].shape[1] :]
            rows = zip(batch, new_tokens, inputs["attention_mask"], strict=True)
            for request, row, prompt_ids in rows:
                text = self._tokenizer.decode(row, skip_special_tokens=True)
                extra = {
                    "judge_model": self.config.model,
                    "latency_s": latency,
                    "tokens_in": int(prompt_ids.sum()),
                    "tokens_out": len(row),
                }
                parsed = parse_local_judgment(text)
                result = (
                    JudgmentResult.ok(
                        self.name,
                        parsed.text,
                        parsed.polarity,
                        spans=spans_of(parsed, request),
                        **extra,
                    )
                    if parsed
                    else JudgmentResult.failed(
                        self.name, f"no Yes/No verdict in: {text[:80]!r}", **extra
                    )
                )
                if on_result is not None:
                    on_result(result)
                results.append(result)
        return results
