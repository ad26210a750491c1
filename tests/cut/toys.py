"""Toy inputs shared by the CUT tests: judged examples, a hand-checkable token batch
and its loss written out by hand, and the resumed-training run."""

import math

import torch

from cut.config import CUTConfig
from cut.examples import JudgedExample, Polarity, RowKind
from cut.loss import TokenTargets
from tests.tiny_models import tiny_llama

P, N, M = int(RowKind.ALIGN_P), int(RowKind.ALIGN_N), int(RowKind.MISALIGN)


NEGATIVES = [
    JudgedExample("What is 7 x 8?", "It is 54.", "Wrong: 7 x 8 is 56.", Polarity.NEGATIVE),
    JudgedExample("Capital of France?", "Lyon.", "Wrong, it is Paris.", Polarity.NEGATIVE),
    JudgedExample("Spell cat.", "c-a-d", "The last letter is t.", Polarity.NEGATIVE),
    JudgedExample("2 + 2?", "5", "2 + 2 = 4.", Polarity.NEGATIVE),
]
POSITIVES = [
    JudgedExample("Say hi.", "hi", "Perfect.", Polarity.POSITIVE),
    JudgedExample("Say yes.", "yes", "Perfect!", Polarity.POSITIVE),
]
FP32 = {"precision": "fp32", "align_p_ratio": None, "lora_dropout": 0.0}


def toy_batch():
    """One Align-P token, then a negative pair of 3 response tokens (Align-N, Misalign)."""
    probs = [0.5, 0.6, 0.2, 0.9, 0.1, 0.3, 0.8]
    kinds = [P, N, N, N, M, M, M]
    pair = [-1, -1, -1, -1, 1, 2, 3]
    logp = torch.tensor(probs, dtype=torch.float64).log().requires_grad_()
    final = [True, False, False, True, False, False, True]  # each row ends with its EOS
    return probs, logp, TokenTargets(torch.tensor(kinds), torch.tensor(pair), torch.tensor(final))


def hand_loss(probs, lam, alpha, gamma=None):
    p_p, (a1, a2, a3), (m1, m2, m3) = probs[0], probs[1:4], probs[4:7]
    total = -math.log(p_p) - math.log(a1) - math.log(a2) - math.log(a3)
    for p_al, p_mis in ((a1, m1), (a2, m2), (a3, m3)):
        if p_al / p_mis > lam:
            weight = alpha * (p_al**gamma if gamma else 1.0)
            total += -weight * math.log(max(1 - p_mis, 1e-5))
        else:
            total += -math.log(p_mis)
    return total


def tiny_model(tokenizer, seed=0):
    return tiny_llama(len(tokenizer), seed=seed)


# lambda 1: the random model flags about half the tokens, so flags are compared
RESUMED_CONFIG = CUTConfig(
    finetuning="full", batch_size=2, micro_batch_size=2, save_state_every=1,
    **{"lambda": 1.0}, **FP32,
)  # fmt: skip
RESUMED_DATA = NEGATIVES + POSITIVES + NEGATIVES  # 10 examples: 5 steps
