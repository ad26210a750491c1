"""Log-probabilities of the target tokens only, without full-vocabulary tensors kept for
backward.

The usual `log_softmax(hidden @ W.T)` keeps a (T, V) fp32 tensor alive for backward and
makes a few more of the same size; with V = 49,152 that dominates a CPU step's memory
and time. Here the forward pass keeps only each position's logsumexp (T floats), and
the backward pass recomputes one chunk of logits at a time to form
d logp / d logits = onehot - softmax. Logsumexp and the softmax run in fp32 even when
the matmuls run in bf16.
"""

from __future__ import annotations

import torch

DEFAULT_CHUNK_SIZE = 256  # positions per chunk: a (chunk, V) fp32 block is ~50 MB at V=49k


class _TargetLogProbs(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx,
        hidden: torch.Tensor,  # (T, H)
        weight: torch.Tensor,  # (V, H) the output embedding
        targets: torch.Tensor,  # (T,) int64
        compute_dtype: torch.dtype,
        chunk_size: int,
    ) -> torch.Tensor:
        w = weight.to(compute_dtype)
        logsumexp = torch.empty(hidden.shape[0], dtype=torch.float32, device=hidden.device)
        target_logits = torch.empty_like(logsumexp)
        with torch.autocast(hidden.device.type, enabled=False):
            for start in range(0, hidden.shape[0], chunk_size):
                end = start + chunk_size
                logits = (hidden[start:end].to(compute_dtype) @ w.T).float()  # (C, V)
                target_logits[start:end] = logits.gather(1, targets[start:end, None]).squeeze(1)
                # logsumexp in place: no (C, V) temporaries beyond `logits` itself
                row_max = logits.amax(dim=-1, keepdim=True)
                summed = logits.sub_(row_max).exp_().sum(dim=-1)
                logsumexp[start:end] = summed.log_().add_(row_max.squeeze(1))
        ctx.save_for_backward(hidden, weight, targets, logsumexp)
        ctx.compute_dtype = compute_dtype
        ctx.chunk_size = chunk_size
        return target_logits - logsumexp  # (T,) fp32

    @staticmethod
    def backward(ctx, grad_logp: torch.Tensor):  # type: ignore[override]
        hidden, weight, targets, logsumexp = ctx.saved_tensors
        dtype, chunk = ctx.compute_dtype, ctx.chunk_size
        need_hidden, need_weight = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        w = weight.to(dtype)
        grad_hidden = torch.empty_like(hidden) if need_hidden else None
        grad_weight = torch.zeros_like(weight, dtype=torch.float32) if need_weight else None
        with torch.autocast(hidden.device.type, enabled=False):
            for start in range(0, hidden.shape[0], chunk):
                end = start + chunk
                h = hidden[start:end].to(dtype)
                logits = (h @ w.T).float()  # (C, V), recomputed
                # d logp_t / d logits = onehot(target) - softmax; scaled by the incoming grad
                grad_logits = torch.exp_(logits.sub_(logsumexp[start:end, None]))
                grad_logits.mul_(-grad_logp[start:end, None])
                grad_logits.scatter_add_(
                    1, targets[start:end, None], grad_logp[start:end, None].float()
                )
                grad_logits = grad_logits.to(dtype)
                if grad_hidden is not None:
                    grad_hidden[start:end] = (grad_logits @ w).to(hidden.dtype)
                if grad_weight is not None and dtype == torch.float32:
                    grad_weight.addmm_(grad_logits.T, h)  # no (V, H) temporary
                elif grad_weight is not None:
                    grad_weight.add_(grad_logits.T @ h)  # bf16 product, fp32 accumulator
        if grad_weight is not None:
            grad_weight = grad_weight.to(weight.dtype)
        return grad_hidden, grad_weight, None, None, None


def target_logprobs(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    compute_dtype: torch.dtype | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> torch.Tensor:
    """log softmax(hidden @ weight.T)[t, targets[t]] for every row t, in fp32, shape (T,).

    `compute_dtype` is the matmul precision (default: the hidden states' dtype, or bf16
    under an active bf16 autocast)."""
    if compute_dtype is None:
        compute_dtype = hidden.dtype
        if torch.is_autocast_enabled(hidden.device.type):
            compute_dtype = torch.get_autocast_dtype(hidden.device.type)
    return _TargetLogProbs.apply(hidden, weight, targets, compute_dtype, chunk_size)
