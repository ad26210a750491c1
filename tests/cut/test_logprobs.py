import pytest
import torch

from cut.logprobs import target_logprobs


def naive(hidden, weight, targets):
    return torch.log_softmax(hidden @ weight.T, dim=-1).gather(1, targets[:, None]).squeeze(1)


@pytest.mark.parametrize("chunk_size", [1, 7, 1000])
def test_values_and_gradients_match_log_softmax(chunk_size):
    torch.manual_seed(0)
    hidden = torch.randn(37, 16, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(101, 16, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 101, (37,))
    upstream = torch.randn(37, dtype=torch.float64)

    lean = target_logprobs(hidden, weight, targets, chunk_size=chunk_size)
    (lean * upstream).sum().backward()
    lean_grads = hidden.grad.clone(), weight.grad.clone()
    hidden.grad = weight.grad = None
    reference = naive(hidden, weight, targets)
    (reference * upstream).sum().backward()

    assert lean.dtype == torch.float32
    torch.testing.assert_close(lean.double(), reference.detach(), atol=1e-5, rtol=0)
    torch.testing.assert_close(lean_grads[0], hidden.grad, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(lean_grads[1], weight.grad, atol=1e-5, rtol=1e-5)


def test_bf16_matmuls_stay_close_to_fp32():
    torch.manual_seed(0)
    hidden, weight = torch.randn(64, 32), torch.randn(500, 32) / 4
    targets = torch.randint(0, 500, (64,))
    fp32 = target_logprobs(hidden, weight, targets)
    bf16 = target_logprobs(hidden, weight, targets, compute_dtype=torch.bfloat16)
    assert bf16.dtype == torch.float32
    torch.testing.assert_close(bf16, fp32, atol=0.1, rtol=0.02)


def test_no_full_vocabulary_tensor_is_kept_for_backward():
    torch.manual_seed(0)
    T, H, V = 256, 16, 4096
    hidden = torch.randn(T, H, requires_grad=True)
    weight = torch.randn(V, H, requires_grad=True)
    saved: list[int] = []

    def pack(tensor):
        saved.append(tensor.numel())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        target_logprobs(hidden, weight, torch.randint(0, V, (T,)), chunk_size=64).sum()
        largest_lean = max(saved)
        saved.clear()
        naive(hidden, weight, torch.randint(0, V, (T,))).sum()
        largest_naive = max(saved)
    assert largest_lean == V * H  # the weight itself, no (T, V) logits
    assert largest_naive >= T * V
