import math
import signal
import subprocess
import sys

import pytest
import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_pre_hook
from transformers import AutoModelForCausalLM

from cut.batching import collate, micro_batches
from cut.checkpoint import METADATA_FILE, save_merged, saved_step
from cut.config import CUTConfig
from cut.examples import ExampleBuilder, JudgedExample, Polarity, RowKind
from cut.loss import LossWeights, cut_loss
from cut.modeling import prepare_for_training, response_logprobs, unwrap
from cut.templates import AlpacaTemplate, select_template
from cut.trainer import accumulate_gradients, train_cut
from tests.cut.toys import FP32, NEGATIVES, POSITIVES, RESUMED_CONFIG, RESUMED_DATA, tiny_model
from tests.tiny_models import TINY_MODELS


def items_for(tokenizer, examples, max_length=256):
    return ExampleBuilder(tokenizer, AlpacaTemplate(), max_length).build(examples).items


@pytest.mark.parametrize("architecture", ["llama", "qwen2", "gpt2"])
@pytest.mark.parametrize("attention", ["sdpa", "eager"])
@pytest.mark.parametrize(
    ("chat", "context", "max_length"),
    [
        (False, "plain", 256),
        (True, "plain", 256),
        (True, "fake_positive", 256),  # both rows judged: the longest shared prefix
        (True, "plain", 24),  # prompts cut from the left: the rows' prefixes part early
        (True, "fake_positive", 24),
    ],
)
def test_packed_logprobs_equal_each_row_run_on_its_own(
    architecture, attention, chat, context, max_length, chat_tokenizer, tokenizer
):
    """Shared-prefix packing (chat: system turn + instruction shared by a pair's rows)
    must give every response token the log-probability its own unpacked row gives, on a
    model that reads the attention mask and positions: rotary (Llama, Qwen2) or learned
    (GPT-2) positions, with SDPA or the eager attention (which adds the mask to its
    scores: a model without SDPA has only that)."""
    model = TINY_MODELS[architecture](len(tokenizer)).eval()  # GPT-2 has dropout
    model.set_attn_implementation(attention)
    tok = chat_tokenizer if chat else tokenizer
    template = select_template("auto", tok)
    builder = ExampleBuilder(tok, template, max_length, context)
    items = builder.build(NEGATIVES + POSITIVES).items
    if max_length < 256:  # every row was cut: the test covers truncated prompts
        assert all(len(r.input_ids) == max_length for i in items for r in i.rows)
    batch = collate(items, pad_token_id=0)
    lean = response_logprobs(model, batch, chunk_size=16)

    expected = []
    for row in (row for item in items for row in item.rows):
        ids = torch.tensor([row.input_ids])
        logp = torch.log_softmax(model(input_ids=ids).logits.float()[0], -1)
        targets = torch.tensor(row.input_ids[row.prompt_length :])
        expected.append(logp[row.prompt_length - 1 : -1].gather(1, targets[:, None]).squeeze(1))
    torch.testing.assert_close(lean, torch.cat(expected), atol=1e-5, rtol=1e-5)
    row_tokens = sum(len(r.input_ids) for i in items for r in i.rows)
    assert batch.n_tokens == row_tokens
    if chat and max_length == 256:  # the instruction sits in the shared prefix: once a pair
        assert batch.n_packed_tokens < row_tokens - 4 * len("What is 7 x 8?")


class BigramLM(nn.Module):
    """A toy LM whose logits are set directly: logits at a position = table[current token]."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        vocab = table.shape[0]
        self.embed = nn.Embedding(vocab, vocab, _weight=torch.eye(vocab))
        self.head = nn.Linear(vocab, vocab, bias=False)
        self.head.weight = nn.Parameter(table.T.clone())  # one-hot @ table = table[row]

    def get_decoder(self):
        def decode(input_ids, **_):  # a bigram needs no positions or mask
            return type("Out", (), {"last_hidden_state": self.embed(input_ids)})

        return decode

    def get_output_embeddings(self):
        return self.head


def test_loss_on_toy_model_equals_hand_computation(tokenizer):
    torch.manual_seed(0)
    vocab = len(tokenizer)
    table = torch.randn(vocab, vocab) * 3
    lm = BigramLM(table)
    items = items_for(tokenizer, NEGATIVES[:2] + POSITIVES[:1])
    batch = collate(items, pad_token_id=0)
    lam, alpha = 1.1, 0.7
    normalizer = batch.target_ids.numel()
    out = cut_loss(
        response_logprobs(lm, batch, 8), batch.targets, LossWeights(lam, alpha), normalizer
    )

    def p(prev: int, nxt: int) -> float:
        row = [math.exp(x) for x in table[prev].tolist()]
        return row[nxt] / sum(row)

    total = 0.0
    for item in items:
        rows = {row.kind: row for row in item.rows}
        if RowKind.ALIGN_P in rows:
            r = rows[RowKind.ALIGN_P]
            total -= sum(
                math.log(p(r.input_ids[t - 1], r.input_ids[t]))
                for t in range(r.prompt_length, len(r.input_ids))
            )
            continue
        al, mis = rows[RowKind.ALIGN_N], rows[RowKind.MISALIGN]
        for k in range(al.response_length):
            ta, tm = al.prompt_length + k, mis.prompt_length + k
            p_al = p(al.input_ids[ta - 1], al.input_ids[ta])
            p_mis = p(mis.input_ids[tm - 1], mis.input_ids[tm])
            total -= math.log(p_al)
            total -= alpha * math.log(1 - p_mis) if p_al / p_mis > lam else math.log(p_mis)
    assert out.loss.item() == pytest.approx(total / normalizer, rel=1e-5)


def test_prompt_tokens_never_contribute_loss(tokenizer):
    """In the bigram model, table[a] only matters where a precedes a target. Prompt tokens
    that never precede a response token must receive no gradient at all."""
    vocab = len(tokenizer)
    lm = BigramLM(torch.randn(vocab, vocab))
    items = items_for(tokenizer, NEGATIVES + POSITIVES, max_length=48)  # truncated prompts
    batch = collate(items, pad_token_id=0)
    out = cut_loss(response_logprobs(lm, batch, 8), batch.targets, LossWeights(), 100)
    out.loss.backward()
    predecessors = {
        row.input_ids[t - 1]
        for item in items
        for row in item.rows
        for t in range(row.prompt_length, len(row.input_ids))
    }
    grad_rows = lm.head.weight.grad.T  # (prev, next)
    touched = {i for i in range(vocab) if grad_rows[i].abs().sum() > 0}
    assert touched == predecessors
    prompt_only = {
        t for item in items for row in item.rows for t in row.input_ids[: row.prompt_length - 1]
    } - predecessors
    assert prompt_only and not (prompt_only & touched)
    # and the targets are exactly the responses
    assert batch.target_ids.tolist() == [
        t for i in items for r in i.rows for t in r.input_ids[r.prompt_length :]
    ]


def gradients_after_one_step(tokenizer, micro_batch_size, **variant):
    config = CUTConfig(
        finetuning="full", lam=1.0, batch_size=8, micro_batch_size=micro_batch_size,
        **FP32, **variant,
    )  # fmt: skip
    model = prepare_for_training(tiny_model(tokenizer), config)
    items = items_for(tokenizer, NEGATIVES + POSITIVES + NEGATIVES[:2])
    totals = accumulate_gradients(model, tokenizer, items, config, None, pad_id=0)
    return {n: p.grad.clone() for n, p in model.named_parameters()}, totals


@pytest.mark.parametrize(
    "variant",
    [{}, {"gamma": 0.5}, {"misalign_context": "fake_positive"}, {"alpha": 0.5}],
)
def test_update_is_the_same_whatever_the_micro_batch_split(tokenizer, variant):
    reference, ref_totals = gradients_after_one_step(tokenizer, 8, **variant)
    assert ref_totals.n_flagged > 0  # the unlikelihood term is part of the comparison
    for micro in (4, 1):
        grads, totals = gradients_after_one_step(tokenizer, micro, **variant)
        assert totals.normalizer == ref_totals.normalizer
        assert totals.n_flagged == ref_totals.n_flagged
        for name, grad in grads.items():
            torch.testing.assert_close(grad, reference[name], atol=2e-6, rtol=1e-4, msg=name)


@pytest.mark.parametrize("checkpointing", [False, True])
def test_a_token_budget_and_checkpointing_leave_the_update_unchanged(tokenizer, checkpointing):
    reference, ref_totals = gradients_after_one_step(tokenizer, 8)
    budget = 700  # two pairs, or a pair and two positives, per pass
    items = items_for(tokenizer, NEGATIVES + POSITIVES + NEGATIVES[:2])
    assert len(micro_batches(items, 8, budget)) >= 3
    grads, totals = gradients_after_one_step(
        tokenizer, 8, max_tokens_per_micro_batch=budget, gradient_checkpointing=checkpointing
    )
    assert (totals.normalizer, totals.n_flagged) == (ref_totals.normalizer, ref_totals.n_flagged)
    for name, grad in grads.items():
        torch.testing.assert_close(grad, reference[name], atol=2e-6, rtol=1e-4, msg=name)


@pytest.mark.parametrize(
    "variant", [{"finetuning": "full"}, {"finetuning": "lora", "gradient_checkpointing": True}]
)
def test_compiled_layers_train_as_the_eager_ones(tokenizer, variant):
    """torch_compile changes the speed only: the same losses step by step (micro-batches
    of changing lengths, so the recompile for dynamic sizes is part of it) and the same
    weights under the same names, so checkpoints and hot swaps are as without it."""

    def train(compiled: bool):
        config = CUTConfig(
            batch_size=4, micro_batch_size=2, learning_rate=1e-2, torch_compile=compiled,
            **FP32, **variant,
        )  # fmt: skip
        return train_cut(tiny_model(tokenizer), tokenizer, NEGATIVES + POSITIVES, config)

    (eager, eager_result), (compiled, compiled_result) = train(False), train(True)
    layers = unwrap(compiled).get_decoder().layers
    assert all(layer._compiled_call_impl is not None for layer in layers)
    losses = [step.loss for step in compiled_result.steps]
    assert losses == pytest.approx([step.loss for step in eager_result.steps], rel=1e-5)
    eager_state, compiled_state = eager.state_dict(), compiled.state_dict()
    assert compiled_state.keys() == eager_state.keys()
    for name, weight in eager_state.items():
        torch.testing.assert_close(compiled_state[name], weight, atol=1e-5, rtol=1e-4, msg=name)


def test_compiling_on_a_cpu_without_a_cpp_compiler_fails_before_any_step(tokenizer):
    config = CUTConfig(finetuning="full", torch_compile=True, **FP32)
    steps = []
    no_compiler = torch._inductor.config.patch({"cpp.cxx": ("no-such-compiler++",)})
    expected = r"cut\.torch_compile: .* needs a C\+\+ compiler"
    with no_compiler, pytest.raises(ValueError, match=expected):
        train_cut(tiny_model(tokenizer), tokenizer, NEGATIVES, config, callback=steps.append)
    assert steps == []


def test_compiling_a_model_without_a_layer_list_fails_naming_the_setting():
    class Flat(nn.Module):  # a decoder whose blocks are not a `layers` list
        def get_decoder(self):
            return nn.Sequential(nn.Linear(4, 4))

    with pytest.raises(ValueError, match=r"cut\.torch_compile: Sequential has no `layers` list"):
        prepare_for_training(Flat(), CUTConfig(finetuning="full", torch_compile=True))


def plain_and_judged_logp(model, tokenizer, example):
    item = items_for(tokenizer, [example])[0]
    batch = collate([item], pad_token_id=0)
    with torch.no_grad():
        logp = response_logprobs(model, batch, 64)
    kinds = batch.targets.kinds
    return logp[kinds == RowKind.MISALIGN], logp[kinds == RowKind.ALIGN_N]


def test_a_flagged_token_loses_probability_in_the_plain_context(tokenizer):
    """Make the plain-context response likely first (MLE), so the unlikelihood gradient
    p/(1-p) is large; then one CUT step with every token flagged must push it down."""
    example = NEGATIVES[0]
    positive = JudgedExample(example.instruction, example.response, "Perfect", Polarity.POSITIVE)
    model = tiny_model(tokenizer)
    memorise = CUTConfig(
        finetuning="full", learning_rate=1e-2, epochs=40, batch_size=1, micro_batch_size=1, **FP32
    )
    model, _ = train_cut(model, tokenizer, [positive], memorise)
    before_plain, _ = plain_and_judged_logp(model, tokenizer, example)
    assert before_plain.exp().mean() > 0.5

    step = CUTConfig(
        finetuning="full",
        learning_rate=1e-3,
        lam=1e-9,
        batch_size=1,
        micro_batch_size=1,
        max_grad_norm=None,
        **FP32,
    )
    model, result = train_cut(model, tokenizer, [example], step)
    after_plain, _ = plain_and_judged_logp(model, tokenizer, example)
    assert result.steps[0].flagged_fraction == 1.0
    assert after_plain.mean() < before_plain.mean()


def test_an_align_n_token_gains_probability_in_the_judged_context(tokenizer):
    model = tiny_model(tokenizer)
    _, before_judged = plain_and_judged_logp(model, tokenizer, NEGATIVES[0])
    config = CUTConfig(
        finetuning="full", learning_rate=1e-3, batch_size=1, micro_batch_size=1, **FP32
    )
    model, _ = train_cut(model, tokenizer, NEGATIVES[:1], config)
    _, after_judged = plain_and_judged_logp(model, tokenizer, NEGATIVES[0])
    assert after_judged.mean() > before_judged.mean()


def test_flagged_report_names_tokens_with_their_ratios(tokenizer):
    model = tiny_model(tokenizer)
    config = CUTConfig(finetuning="full", lam=1.0, **FP32)
    _, result = train_cut(model, tokenizer, NEGATIVES + POSITIVES, config)
    assert set(result.flagged) == {0, 1, 2, 3}  # negatives only, by example index
    report = result.flagged[0]
    assert report.response_length == len("It is 54.") + 1
    assert len(report.positions) == len(report.token_ids) == len(report.texts) == len(report.ratios)
    assert all(r > 1.0 for r in report.ratios)
    assert all(
        tokenizer.convert_ids_to_tokens(i) == t.strip() or t == " "
        for i, t in zip(report.token_ids, report.texts, strict=True)
    )


@pytest.mark.parametrize("finetuning", ["full", "lora"])
def test_saved_checkpoint_reloads_with_identical_logits(tokenizer, tmp_path, finetuning):
    model = tiny_model(tokenizer)
    config = CUTConfig(
        finetuning=finetuning,
        learning_rate=1e-2,
        lora_target_modules=("gate_proj", "up_proj", "down_proj"),
        **FP32,
    )
    model, result = train_cut(model, tokenizer, NEGATIVES + POSITIVES, config)
    out = save_merged(model, tokenizer, tmp_path / "ckpt", config, step=len(result.steps))
    merged = model.merge_and_unload() if finetuning == "lora" else model
    reloaded = AutoModelForCausalLM.from_pretrained(out)
    ids = torch.tensor([tokenizer("Capital of France?")["input_ids"]])
    merged.eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(ids).logits, merged(ids).logits, atol=0, rtol=0)
    assert (out / METADATA_FILE).is_file() and (out / "model.safetensors").is_file()
    assert not any(name.startswith("adapter") for name in (p.name for p in out.iterdir()))


def test_resume_from_saved_state_matches_an_uninterrupted_run(tokenizer, tmp_path):
    config, data = RESUMED_CONFIG, RESUMED_DATA
    straight, straight_result = train_cut(tiny_model(tokenizer), tokenizer, data, config)

    class Crash(Exception):
        pass

    def crash_at_step_3(metrics):
        if metrics.step == 3:
            raise Crash

    with pytest.raises(Crash):
        train_cut(
            tiny_model(tokenizer),
            tokenizer,
            data,
            config,
            callback=crash_at_step_3,
            state_dir=tmp_path,
        )
    resumed, result = train_cut(
        tiny_model(tokenizer, seed=1), tokenizer, data, config, state_dir=tmp_path, resume=True
    )
    assert [m.step for m in result.steps] == [3, 4, 5]
    for (name, a), b in zip(straight.named_parameters(), resumed.parameters(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5, msg=name)
    # the report covers steps 1-2 too (from the state), each example's latest flags
    assert sorted(result.flagged) == sorted(straight_result.flagged) == [0, 1, 2, 3, 6, 7, 8, 9]
    assert sum(len(r.positions) for r in straight_result.flagged.values()) > 0
    for index, report in straight_result.flagged.items():
        resumed_report = result.flagged[index]
        assert (resumed_report.positions, resumed_report.token_ids) == (
            report.positions,
            report.token_ids,
        ), index
        torch.testing.assert_close(resumed_report.ratios, report.ratios, rtol=1e-5, atol=0)


def test_a_kill_while_a_state_is_written_resumes_from_the_state_before(tokenizer, tmp_path):
    killed = subprocess.run(
        [sys.executable, "-m", "tests.cut.killed_mid_save", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert saved_step(tmp_path) == 2  # step 3's state was never whole
    straight, _ = train_cut(tiny_model(tokenizer), tokenizer, RESUMED_DATA, RESUMED_CONFIG)
    resumed, result = train_cut(
        tiny_model(tokenizer, seed=1), tokenizer, RESUMED_DATA, RESUMED_CONFIG,
        state_dir=tmp_path, resume=True,
    )  # fmt: skip
    assert [m.step for m in result.steps] == [3, 4, 5]
    for (name, a), b in zip(straight.named_parameters(), resumed.parameters(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5, msg=name)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest", "step-5"]


def test_resume_refuses_a_state_saved_with_other_settings(tokenizer, tmp_path):
    config = CUTConfig(
        finetuning="full", batch_size=2, micro_batch_size=2, save_state_every=1, **FP32
    )
    train_cut(tiny_model(tokenizer), tokenizer, NEGATIVES, config, state_dir=tmp_path)
    other = config.model_copy(update={"learning_rate": 1e-3})
    with pytest.raises(ValueError, match="learning_rate"):
        train_cut(
            tiny_model(tokenizer), tokenizer, NEGATIVES, other, state_dir=tmp_path, resume=True
        )


def test_lora_trains_only_the_adapter(tokenizer):
    model = prepare_for_training(tiny_model(tokenizer), CUTConfig(**FP32))
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert {n.split(".")[-4] for n in trainable} == {"gate_proj", "up_proj", "down_proj"}


@pytest.fixture
def optimizer_steps():
    """What every optimizer step sees (learning rate, gradient norm) just before it
    updates, read by torch's global step hook: the schedule and clipping as applied."""
    seen: list[tuple[float, float]] = []

    def record(optimizer, args, kwargs):
        grads = [p.grad for group in optimizer.param_groups for p in group["params"]
                 if p.grad is not None]  # fmt: skip
        norm = float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])))
        seen.append((optimizer.param_groups[0]["lr"], norm))

    handle = register_optimizer_step_pre_hook(record)
    yield seen
    handle.remove()


def test_gradients_are_clipped_to_max_grad_norm_and_the_norm_before_is_reported(
    tokenizer, optimizer_steps
):
    config = CUTConfig(finetuning="full", batch_size=2, micro_batch_size=2, max_grad_norm=0.05,
                       **FP32)  # fmt: skip
    _, result = train_cut(tiny_model(tokenizer), tokenizer, NEGATIVES, config)
    reported = [m.grad_norm for m in result.steps]
    applied = [norm for _, norm in optimizer_steps]
    assert len(applied) == len(reported) == 2 and min(reported) > 0.05
    assert applied == pytest.approx([0.05, 0.05], rel=1e-4)
    unclipped = config.model_copy(update={"max_grad_norm": None})
    optimizer_steps.clear()
    _, result = train_cut(tiny_model(tokenizer), tokenizer, NEGATIVES, unclipped)
    assert [n for _, n in optimizer_steps] == pytest.approx([m.grad_norm for m in result.steps])


def test_the_learning_rate_warms_up_linearly_then_decays_on_a_cosine(tokenizer, optimizer_steps):
    config = CUTConfig(finetuning="full", batch_size=1, micro_batch_size=1, learning_rate=1e-3,
                       warmup_fraction=0.4, **FP32)  # fmt: skip
    _, result = train_cut(tiny_model(tokenizer), tokenizer, NEGATIVES + NEGATIVES[:1], config)
    # 5 steps, 2 of warmup: 0, 1/2, then cos from the peak over the 3 steps left
    expected = [0.0, 0.5e-3] + [0.5e-3 * (1 + math.cos(math.pi * k / 3)) for k in range(3)]
    assert [m.learning_rate for m in result.steps] == pytest.approx(expected)
    assert [lr for lr, _ in optimizer_steps] == pytest.approx(expected)


@pytest.mark.parametrize(
    ("method", "examples"), [("cut", POSITIVES), ("sft", NEGATIVES), ("dpo", NEGATIVES)]
)
def test_nothing_to_train_on_fails_before_any_step(tokenizer, method, examples, optimizer_steps):
    # cut keeps int(0.25 x negatives) positives: none without a negative
    config = CUTConfig(finetuning="full", method=method, **{**FP32, "align_p_ratio": 0.25})
    with pytest.raises(ValueError, match=f"no trainable examples for method '{method}'"):
        train_cut(tiny_model(tokenizer), tokenizer, examples, config)
    assert optimizer_steps == []
