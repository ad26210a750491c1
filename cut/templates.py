"""The two prompt contexts of CUT: *plain* (instruction only) and *judged*
(instruction plus a judgment the response should match).

Base models get the reference code's Alpaca strings; chat models get the same two
contexts rendered with their own chat template, the judgment placed in the user turn
after the instruction. Inference always uses the plain context.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

TemplateName = Literal["auto", "alpaca", "chat"]

ALPACA_PLAIN = (
    "Below is an instruction that describes a task. Write a response that appropriately "
    "completes the request.\n\n### Instruction:\n{instruction}\n\n### Response:\n"
)
ALPACA_JUDGED = (
    "Below is an instruction that describes a task. Write a response to the instruction and "
    "the response should match the corresponding judgment.\n\n### Instruction:\n{instruction}"
    "\n\n### Judgment:\n{judgment}\n\n### Response:\n"
)
MATCH_JUDGMENT_REQUEST = (
    "Write a response to the instruction and the response should match the corresponding judgment."
)
# The paper's Misalign context variant: the judged context with a made-up positive judgment.
FAKE_POSITIVE_JUDGMENT = "Your response to the instruction is satisfactory."


class PromptTemplate(Protocol):
    """Renders the contexts as text; `adds_special_tokens` tells the tokenizer whether
    to add its own BOS (a rendered chat template already carries its special tokens)."""

    adds_special_tokens: bool

    def plain(self, instruction: str) -> str: ...

    def judged(self, instruction: str, judgment: str) -> str: ...


@dataclass(frozen=True)
class AlpacaTemplate:
    adds_special_tokens: bool = True

    def plain(self, instruction: str) -> str:
        return ALPACA_PLAIN.format(instruction=instruction)

    def judged(self, instruction: str, judgment: str) -> str:
        return ALPACA_JUDGED.format(instruction=instruction, judgment=judgment)


@dataclass(frozen=True)
class ChatTemplate:
    tokenizer: object  # a transformers tokenizer with a chat template
    adds_special_tokens: bool = False

    def _render(self, user_message: str) -> str:
        messages = [{"role": "user", "content": user_message}]
        return self.tokenizer.apply_chat_template(  # type: ignore[attr-defined]
            messages, tokenize=False, add_generation_prompt=True
        )

    def plain(self, instruction: str) -> str:
        return self._render(instruction)

    def judged(self, instruction: str, judgment: str) -> str:
        return self._render(
            f"{instruction}\n\n### Judgment:\n{judgment}\n\n{MATCH_JUDGMENT_REQUEST}"
        )


def select_template(name: TemplateName, tokenizer: object) -> PromptTemplate:
    """`auto` picks the chat variant when the tokenizer has a chat template."""
    has_chat_template = bool(getattr(tokenizer, "chat_template", None))
    if name == "chat" and not has_chat_template:
        raise ValueError("template='chat' but the tokenizer has no chat template")
    if name == "chat" or (name == "auto" and has_chat_template):
        return ChatTemplate(tokenizer)
    return AlpacaTemplate()
