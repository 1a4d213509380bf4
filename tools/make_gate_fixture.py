#!/usr/bin/env python3
"""Golden fixtures for evictbench's Fast KVzip gate converter and gate forward.

Writes (relative to the repo root) into tests/fixtures/gates/:
  q3_dim16_sink16.pt   a tiny fake gate checkpoint in the layout of the official optim.py:
                       torch.save({"module": [state_dict per layer], "loss", "acc",
                       "loss_train", "acc_train"}) with numpy training curves. Shapes fit
                       the tiny qwen3 test model (D=40, 2 KV heads, group 3, 3 layers);
                       q_proj/k_proj/b are bf16 (the model dtype), norms and k_base fp32.
  golden.json          hidden inputs x [layer][T*D] and the scores [layer][H*T] the
                       inference formula gives in torch (bias added once, mean over the group).
  malicious.pt         a torch.save of an object whose __reduce__ calls os.system; saving
                       never runs it, and the converter must refuse to load it.

Dev-only: run with the repo venv, `.venv/bin/python tools/make_gate_fixture.py`.
Seeded; two runs give identical bytes.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "tests" / "fixtures" / "gates"

D, H, G, DIM, SINK, LAYERS, T = 40, 2, 3, 16, 16, 3, 5


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Qwen3 semantics: normalise in fp32, cast back, multiply by the fp32 weight."""
    dtype = x.dtype
    x32 = x.to(torch.float32)
    x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)
    return weight * x32.to(dtype)


def gate_scores(state: dict, x: torch.Tensor) -> torch.Tensor:
    """The inference forward of one gate: [T, D] -> [H, T]."""
    wq = state["q_proj.weight"].float()
    bq = state["q_proj.bias"].float()
    wk = state["k_proj.weight"].float()
    q = rms_norm((x @ wq.T + bq).view(T, H, G, DIM), state["q_norm.weight"])  # T H G d
    k = rms_norm((x @ wk.T).view(T, H, DIM), state["k_norm.weight"])  # T H d
    self_logit = torch.einsum("thd,thgd->thg", k, q) / math.sqrt(DIM)
    self_logit = self_logit + state["b"].float().view(1, H, G)
    k_base = state["k_base"].float().view(H, SINK, DIM)
    sink_logit = torch.einsum("hsd,thgd->thgs", k_base, q) / math.sqrt(DIM)
    p = torch.sigmoid(self_logit - torch.logsumexp(sink_logit, dim=-1))
    return p.mean(-1).T.contiguous()  # H T


class TinyGate(torch.nn.Module):
    """The parameter layout of the official gate module (names, shapes and dtypes)."""

    def __init__(self):
        super().__init__()
        bf16 = torch.bfloat16
        self.q_proj = torch.nn.Linear(D, H * G * DIM, bias=True, dtype=bf16)
        self.k_proj = torch.nn.Linear(D, H * DIM, bias=False, dtype=bf16)
        self.q_norm = torch.nn.Module()
        self.q_norm.weight = torch.nn.Parameter(torch.ones(DIM))
        self.k_norm = torch.nn.Module()
        self.k_norm.weight = torch.nn.Parameter(torch.ones(DIM))
        self.b = torch.nn.Parameter(torch.zeros(H, 1, G, dtype=bf16))
        self.k_base = torch.nn.Parameter(torch.zeros(H, 1, SINK, DIM))


def make_state(gen: torch.Generator) -> dict:
    """A state dict (an OrderedDict with _metadata, as module.state_dict() gives) of random values."""
    module = TinyGate()
    with torch.no_grad():
        for name, p in module.named_parameters():
            scale = {"b": 0.5, "k_base": 0.7, "q_proj.bias": 0.1}.get(name, 1 / math.sqrt(D))
            values = torch.randn(p.shape, generator=gen) * scale
            if name.endswith("norm.weight"):
                values = 1 + torch.randn(p.shape, generator=gen) * 0.2
            p.copy_(values.to(p.dtype))
    return module.state_dict()


class RunsCode:
    """Pickles as a call to os.system: what a checkpoint with code in it looks like."""

    def __reduce__(self):
        return (os.system, ("echo this pickle runs code",))


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(0)
    states = [make_state(gen) for _ in range(LAYERS)]
    # Training curves as optim.py stores them: numpy float64 arrays [log points, layers].
    curves = {
        name: np.array([[0.5 / (i + 1) + 0.01 * l for l in range(LAYERS)] for i in range(4)])
        for name in ("loss", "acc", "loss_train", "acc_train")
    }
    torch.save({"module": states, **curves}, OUT / f"q{G}_dim{DIM}_sink{SINK}.pt")

    xs, scores = [], []
    for l in range(LAYERS):
        x = torch.randn(T, D, generator=gen)
        with torch.no_grad():
            s = gate_scores(states[l], x)
        xs.append([float(v) for v in x.flatten()])
        scores.append([float(v) for v in s.flatten()])
    golden = {
        "note": "x[l] is [T, D] row-major; scores[l] is [H, T]; made by tools/make_gate_fixture.py",
        "D": D, "H": H, "G": G, "d": DIM, "S": SINK, "T": T,
        "x": xs, "scores": scores,
    }
    (OUT / "golden.json").write_text(json.dumps(golden) + "\n")

    torch.save({"module": [RunsCode()]}, OUT / "malicious.pt")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
