import pytest

from cut.templates import (
    ALPACA_JUDGED,
    ALPACA_PLAIN,
    MATCH_JUDGMENT_REQUEST,
    AlpacaTemplate,
    ChatTemplate,
    select_template,
)


def test_alpaca_contexts_are_the_reference_strings():
    template = AlpacaTemplate()
    assert template.plain("Add 2 and 3.") == (
        "Below is an instruction that describes a task. Write a response that appropriately "
        "completes the request.\n\n### Instruction:\nAdd 2 and 3.\n\n### Response:\n"
    )
    judged = template.judged("Add 2 and 3.", "Wrong: it is 5.")
    assert judged.endswith(
        "### Instruction:\nAdd 2 and 3.\n\n### Judgment:\nWrong: it is 5.\n\n### Response:\n"
    )
    assert "should match the corresponding judgment" in judged
    assert ALPACA_PLAIN != ALPACA_JUDGED


def test_chat_variant_puts_judgment_in_user_turn_after_instruction(chat_tokenizer):
    template = ChatTemplate(chat_tokenizer)
    judged = template.judged("Add 2 and 3.", "Wrong: it is 5.")
    user_turn = judged.split("<|im_start|>user\n")[1].split("<|im_end|>")[0]
    assert user_turn.index("Add 2 and 3.") < user_turn.index("Wrong: it is 5.")
    assert user_turn.endswith(MATCH_JUDGMENT_REQUEST)
    assert judged.endswith("<|im_start|>assistant\n")
    assert template.plain("Add 2 and 3.") == (
        "<|im_start|>user\nAdd 2 and 3.<|im_end|>\n<|im_start|>assistant\n"
    )


def test_auto_selects_chat_only_when_tokenizer_has_template(tokenizer, chat_tokenizer):
    assert isinstance(select_template("auto", chat_tokenizer), ChatTemplate)
    assert isinstance(select_template("auto", tokenizer), AlpacaTemplate)
    assert isinstance(select_template("alpaca", chat_tokenizer), AlpacaTemplate)
    with pytest.raises(ValueError, match="no chat template"):
        select_template("chat", tokenizer)
