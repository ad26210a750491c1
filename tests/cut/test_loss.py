import math

import pytest
import torch

from cut.loss import LossWeights, TokenTargets, cut_loss, flag_tokens
from tests.cut.toys import M, N, hand_loss, toy_batch


def test_flags_exactly_tokens_whose_ratio_exceeds_lambda():
    p_al = torch.tensor([0.50, 0.30, 0.11, 0.10, 0.2, 0.9])
    p_mis = torch.tensor([0.10, 0.30, 0.10, 0.20, 0.18, 0.5])
    # ratios:              5.0   1.0   1.1   0.5   1.111 1.8
    flagged = flag_tokens(p_al, p_mis, lam=1.1)
    assert flagged.tolist() == [True, False, False, False, True, True]
    assert not flag_tokens(p_al, p_mis, lam=math.inf).any()


@pytest.mark.parametrize(
    ("lam", "alpha", "gamma"),
    [(1.1, 1.0, None), (1.2, 0.5, None), (1.1, 1.0, 0.5), (5.0, 2.0, 2.0)],
)
def test_loss_equals_hand_computation(lam, alpha, gamma):
    probs, logp, targets = toy_batch()
    out = cut_loss(logp, targets, LossWeights(lam, alpha, gamma), normalizer=7)
    assert out.loss.item() == pytest.approx(hand_loss(probs, lam, alpha, gamma) / 7, rel=1e-9)
    # ratios p_al / p_mis are 6, 0.67 and 1.125
    expected = [False] * 4 + [lam < 6.0, False, lam < 1.125]
    assert out.flagged.tolist() == expected


def test_infinite_lambda_reduces_to_mle_on_every_row():
    probs, logp, targets = toy_batch()
    out = cut_loss(logp, targets, LossWeights(lam=math.inf), normalizer=7)
    assert out.loss.item() == pytest.approx(-sum(math.log(p) for p in probs) / 7)
    assert out.unlikelihood_sum == 0.0


def test_unlikelihood_term_is_clamped_when_p_is_one():
    logp = torch.tensor([math.log(0.9), 0.0], requires_grad=True)
    targets = TokenTargets(torch.tensor([N, M]), torch.tensor([-1, 0]), torch.tensor([True, True]))
    out = cut_loss(logp, targets, LossWeights(lam=1e-3), normalizer=2)
    assert math.isfinite(out.loss.item())
    assert out.unlikelihood_sum == pytest.approx(-math.log(1e-5))


@pytest.mark.parametrize("gamma", [None, 0.5])
def test_gradient_does_not_flow_through_the_ratio_test(gamma):
    """With γ on, the unlikelihood weight p_al^γ reads the paired Align-N token's
    probability: detached, the Align tokens still get exactly the MLE gradient."""
    _, logp, targets = toy_batch()
    out = cut_loss(logp, targets, LossWeights(lam=1.1, gamma=gamma), normalizer=7)
    out.loss.backward()
    # Align tokens get exactly the MLE gradient -1/normaliser: nothing from the Misalign ratio
    assert logp.grad[:4].tolist() == pytest.approx([-1 / 7] * 4)
    # flagged Misalign token 1 (p=0.1, paired p_al=0.6): d/dlogp of -w·log(1-p) = w·p/(1-p)
    weight = 0.6**gamma if gamma else 1.0
    assert float(logp.grad[4]) == pytest.approx(weight * (0.1 / 0.9) / 7)
    assert float(logp.grad[5]) == pytest.approx(-1 / 7)  # kept token: plain MLE


def test_eos_is_never_flagged_when_flag_eos_is_off():
    probs, logp, targets = toy_batch()
    lam = 1.1  # flags Misalign tokens 1 and 3; token 3 ends its row (the EOS)
    with_eos = cut_loss(logp, targets, LossWeights(lam), normalizer=7)
    without = cut_loss(logp, targets, LossWeights(lam, flag_eos=False), normalizer=7)
    assert with_eos.flagged.tolist()[4:] == [True, False, True]
    assert without.flagged.tolist()[4:] == [True, False, False]
    # the EOS is trained with MLE instead: -log p_mis(EOS)
    mle_eos = -math.log(probs[6])
    assert without.mle_sum == pytest.approx(with_eos.mle_sum + mle_eos)
