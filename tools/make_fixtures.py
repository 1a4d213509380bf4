#!/usr/bin/env python3
"""Generate golden HF-transformers fixtures for the evictbench CPU engine.

Writes (relative to the repo root):
  tests/fixtures/hf/<case>/        tiny random HF model dirs + golden logits
  tests/fixtures/tokenizer/        small byte-level BPE tokenizer + golden encodings

Python is a dev-only tool here: run it via the repo venv (tools/setup_venv.sh):
  .venv/bin/python tools/make_fixtures.py            # all cases + tokenizer
  .venv/bin/python tools/make_fixtures.py --only gemma3 --only qwen3
  .venv/bin/python tools/make_fixtures.py --check    # regenerate in a temp dir, compare bytes

Everything is seeded; two runs produce identical bytes (verified by --check).
"""

from __future__ import annotations

import argparse
import filecmp
import json
import math
import os
import shutil
import sys
import tempfile
import zlib
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import (  # noqa: E402
    AutoModelForCausalLM,
    Gemma3ForCausalLM,
    Gemma3TextConfig,
    LlamaConfig,
    LlamaForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen3Config,
    Qwen3ForCausalLM,
)

transformers.logging.set_verbosity_error()
try:  # progress bars from save_pretrained's shard writer
    transformers.utils.logging.disable_progress_bar()
except Exception:  # pragma: no cover
    pass

REPO = Path(__file__).resolve().parent.parent
HF_OUT = REPO / "tests" / "fixtures" / "hf"
TOK_OUT = REPO / "tests" / "fixtures" / "tokenizer"

# ---------------------------------------------------------------------------------------------
# Case definitions
# ---------------------------------------------------------------------------------------------

LLAMA3_ROPE = {
    "rope_type": "llama3",
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 32,
}
YARN_ROPE = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32}
YARN_ROPE_PARAMS = {
    "rope_type": "yarn",
    "factor": 4.0,
    "original_max_position_embeddings": 32,
    "attention_factor": 1.25,
    "beta_fast": 4.0,
    "beta_slow": 0.5,
    "truncate": False,
}


def llama_cfg(**over):
    base = dict(
        vocab_size=101,
        hidden_size=40,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
        rope_theta=10000.0,
    )
    base.update(over)
    return base


def qwen_cfg(**over):
    base = dict(
        vocab_size=103,
        hidden_size=48,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        rms_norm_eps=1e-6,
        tie_word_embeddings=True,
        rope_theta=1000000.0,
    )
    base.update(over)
    return base


CASES: list[dict] = [
    dict(
        name="llama",
        arch=(LlamaConfig, LlamaForCausalLM),
        cfg=llama_cfg(vocab_size=97, hidden_size=48, num_attention_heads=6, num_key_value_heads=2),
        T=28,
        notes="Plain Llama, GQA 6q/2kv heads, head_dim = hidden/heads = 8, untied lm_head, default RoPE.",
        hidden_states=True,
    ),
    dict(
        name="llama_bias",
        arch=(LlamaConfig, LlamaForCausalLM),
        cfg=llama_cfg(vocab_size=103, attention_bias=True, mlp_bias=True),
        T=26,
        notes="attention_bias=True (q,k,v AND o_proj biases) and mlp_bias=True (gate,up,down biases); "
        "4q/2kv heads, head_dim 10.",
    ),
    dict(
        name="llama_rope_linear",
        arch=(LlamaConfig, LlamaForCausalLM),
        cfg=llama_cfg(vocab_size=107, rope_scaling={"rope_type": "linear", "factor": 2.0}),
        T=30,
        notes="Linear RoPE scaling: inv_freq /= factor (factor 2).",
    ),
    dict(
        name="llama_rope_llama3",
        arch=(LlamaConfig, LlamaForCausalLM),
        cfg=llama_cfg(vocab_size=109, head_dim=12, rope_theta=500.0, rope_scaling=dict(LLAMA3_ROPE)),
        T=32,
        notes="llama3 RoPE (factor 8, low 1, high 4, original 32); explicit head_dim=12 != hidden/heads (10); "
        "theta=500 so the high-freq (kept), medium (smoothed) and low-freq (/factor) bands all occur.",
        check="llama3",
    ),
    dict(
        name="llama_rope_yarn",
        arch=(LlamaConfig, LlamaForCausalLM),
        cfg=llama_cfg(vocab_size=113, head_dim=12, rope_theta=1000.0, rope_scaling=dict(YARN_ROPE)),
        T=28,
        notes="YaRN (factor 4, original 32, defaults: beta_fast 32, beta_slow 1, truncate true, "
        "attention_factor = 0.1*ln(4)+1); head_dim 12. max_position_embeddings (256) / original (32) = 8 != "
        "factor on purpose: HF uses the explicit factor (it only warns).",
        check="yarn",
    ),
    dict(
        name="llama_rope_yarn_params",
        arch=(LlamaConfig, LlamaForCausalLM),
        cfg=llama_cfg(vocab_size=99, head_dim=12, rope_theta=100.0, rope_scaling=dict(YARN_ROPE_PARAMS)),
        T=28,
        notes="YaRN with explicit attention_factor=1.25, beta_fast=4, beta_slow=0.5, truncate=false "
        "(fractional ramp bounds low~0.32, high~3.02); theta 100, head_dim 12.",
        check="yarn",
    ),
    dict(
        name="qwen2",
        arch=(Qwen2Config, Qwen2ForCausalLM),
        cfg=qwen_cfg(vocab_size=127),
        T=27,
        notes="Qwen2: q/k/v bias always on (o_proj no bias), head_dim = 48/4 = 12, tied embeddings "
        "(no lm_head.weight tensor in the checkpoint).",
        hidden_states=True,
    ),
    dict(
        name="qwen2_sharded",
        arch=(Qwen2Config, Qwen2ForCausalLM),
        cfg=qwen_cfg(vocab_size=127),
        T=27,
        shard="30KB",
        notes="Same architecture as qwen2 (different random weights), saved with max_shard_size=30KB: "
        "several model-XXXXX-of-XXXXX.safetensors + model.safetensors.index.json.",
    ),
    dict(
        name="qwen3",
        arch=(Qwen3Config, Qwen3ForCausalLM),
        cfg=qwen_cfg(vocab_size=103, head_dim=16, tie_word_embeddings=False, max_position_embeddings=256),
        T=29,
        notes="Qwen3: per-head q_norm/k_norm RMSNorm (before RoPE), no biases, 4q/2kv heads, head_dim=16 "
        "explicit (hidden 48 / 4 heads = 12 would be wrong), untied.",
        layers_json=True,
        hidden_states=True,
    ),
    dict(
        name="qwen3_yarn",
        arch=(Qwen3Config, Qwen3ForCausalLM),
        cfg=qwen_cfg(
            vocab_size=97,
            hidden_size=32,
            head_dim=16,
            max_position_embeddings=256,
            rope_theta=10000.0,
            rope_scaling=dict(YARN_ROPE),
        ),
        T=28,
        notes="Qwen3 + YaRN (factor 4, original 32, default betas/truncate), hidden 32, 4q/2kv heads of 16, tied.",
        check="yarn",
    ),
    dict(
        name="gemma3",
        arch=(Gemma3TextConfig, Gemma3ForCausalLM),
        cfg=dict(
            vocab_size=103,
            hidden_size=32,
            intermediate_size=32,
            num_hidden_layers=5,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=12,
            query_pre_attn_scalar=20,
            sliding_window=6,
            sliding_window_pattern=3,
            rope_theta=1000000.0,
            rope_local_base_freq=10000.0,
            rope_scaling={"rope_type": "linear", "factor": 8.0},
            hidden_activation="gelu_pytorch_tanh",
            max_position_embeddings=512,
            rms_norm_eps=1e-6,
            tie_word_embeddings=True,
            final_logit_softcapping=None,
            attn_logit_softcapping=None,
        ),
        T=32,
        notes="Gemma3 text: 5 layers, sliding_window_pattern=3 -> [S,S,F,S,S]; sliding_window=6 with T=32; "
        "query_pre_attn_scalar=20 != head_dim 12 (!= hidden/heads 8); local theta 1e4 (default rope) / "
        "global theta 1e6 with linear x8; sandwich norms; (1+w) RMSNorm; embeddings * f32(sqrt(32)); tied.",
        layers_json=True,
        hidden_states=True,
        gemma=True,
    ),
    dict(
        name="llama_bf16",
        arch=(LlamaConfig, LlamaForCausalLM),
        cfg=llama_cfg(vocab_size=97),
        T=24,
        save_dtype=torch.bfloat16,
        notes="Weights stored as bfloat16 (config dtype bfloat16), 4q/2kv heads.",
    ),
    dict(
        name="qwen3_f16",
        arch=(Qwen3Config, Qwen3ForCausalLM),
        cfg=qwen_cfg(vocab_size=109, hidden_size=32, head_dim=16, max_position_embeddings=256),
        T=24,
        save_dtype=torch.float16,
        notes="Weights stored as float16 (config dtype float16), Qwen3 hidden 32, head_dim 16, tied.",
    ),
]

# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def case_seed(name: str) -> int:
    return zlib.crc32(name.encode()) & 0x7FFFFFFF


def randomize_(model: torch.nn.Module, seed: int, gemma: bool, lm_head_std: float = 0.3) -> None:
    """Overwrite every parameter with large-scale seeded noise (HF's init is too small/too regular)."""
    g = torch.Generator().manual_seed(seed)
    seen: set[int] = set()
    with torch.no_grad():
        for name, p in sorted(model.named_parameters(remove_duplicate=False), key=lambda kv: kv[0]):
            if id(p) in seen:  # tied weights appear twice
                continue
            seen.add(id(p))
            shape = tuple(p.shape)
            noise = lambda std: torch.randn(shape, generator=g, dtype=torch.float32) * std  # noqa: E731
            if "embed_tokens" in name:
                val = noise(1.0)
            elif "norm" in name:
                val = noise(0.1) if gemma else 1.0 + noise(0.1)
            elif name.endswith(".bias"):
                val = noise(0.1)
            elif name.startswith("lm_head"):
                val = noise(lm_head_std)
            elif p.dim() == 2:
                val = noise(0.15)
            else:
                raise RuntimeError(f"unhandled parameter {name} {shape}")
            p.copy_(val.to(p.dtype))


def f32_le_bytes(t: torch.Tensor) -> bytes:
    return t.detach().to(torch.float32).contiguous().numpy().astype("<f4", copy=False).tobytes()


def _fmt(obj, ind: int) -> str:
    """JSON with 2-space indent, but lists of scalars kept on one line (compact id/float arrays)."""
    pad, pad2 = " " * ind, " " * (ind + 2)
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [f"{pad2}{json.dumps(str(k), ensure_ascii=False)}: {_fmt(v, ind + 2)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, (list, tuple)):
        if all(not isinstance(x, (dict, list, tuple)) for x in obj):
            return "[" + ", ".join(json.dumps(x, ensure_ascii=False) for x in obj) + "]"
        return "[\n" + ",\n".join(pad2 + _fmt(x, ind + 2) for x in obj) + "\n" + pad + "]"
    return json.dumps(obj, ensure_ascii=False)


def jdump(obj, path: Path) -> None:
    path.write_text(_fmt(obj, 0) + "\n")


def f32list(t: torch.Tensor) -> list[float]:
    # float32 values printed as the shortest repr of the float64 with the same value (exact).
    return [float(x) for x in t.detach().to(torch.float32).reshape(-1).tolist()]


def legacy_config(cfg: dict) -> dict:
    """Rewrite a transformers-5 config.json into the pre-v5 layout still used by most Hub checkpoints
    (rope_theta / rope_scaling / rope_local_base_freq / sliding_window_pattern / torch_dtype)."""
    out = {}
    rp = cfg.get("rope_parameters")
    for k, v in cfg.items():
        if k in ("rope_parameters", "_sliding_window_pattern"):
            continue
        if k == "dtype":
            out["torch_dtype"] = v
            continue
        if k == "layer_types" and cfg.get("model_type") in ("gemma3_text", "qwen2", "qwen3"):
            continue  # derived from sliding_window_pattern / max_window_layers
        out[k] = v
    if cfg.get("model_type") == "gemma3_text":
        full = dict(rp["full_attention"])
        slide = dict(rp["sliding_attention"])
        out["rope_theta"] = full.pop("rope_theta")
        out["rope_local_base_freq"] = slide.pop("rope_theta")
        assert slide == {"rope_type": "default"}, slide
        out["rope_scaling"] = full if full.get("rope_type") != "default" else None
        out.pop("sliding_window_pattern", None)
        out["sliding_window_pattern"] = cfg["_sliding_window_pattern"]
    else:
        rp = dict(rp)
        out["rope_theta"] = rp.pop("rope_theta")
        out["rope_scaling"] = rp if rp.get("rope_type") != "default" else None
    return dict(sorted(out.items()))


def rope_band_report(case: dict, model) -> dict:
    """Check which llama3 / yarn regimes the head_dim actually hits (so the fixture is meaningful)."""
    cfg = model.config
    rp = cfg.rope_parameters
    dim = cfg.head_dim
    base = rp["rope_theta"]
    inv = model.model.rotary_emb.inv_freq.double()
    plain = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
    rep: dict = {}
    if case.get("check") == "llama3":
        orig = rp["original_max_position_embeddings"]
        wl = 2 * math.pi / plain
        bands = []
        for w in wl.tolist():
            if w < orig / rp["high_freq_factor"]:
                bands.append("high(keep)")
            elif w > orig / rp["low_freq_factor"]:
                bands.append("low(/factor)")
            else:
                bands.append("medium(smooth)")
        assert {"high(keep)", "low(/factor)", "medium(smooth)"} <= set(bands), bands
        rep = {"wavelengths": [round(x, 4) for x in wl.tolist()], "bands": bands}
    elif case.get("check") == "yarn":
        bf = rp.get("beta_fast") or 32
        bs = rp.get("beta_slow") or 1
        orig = rp["original_max_position_embeddings"]

        def corr(nrot):
            return (dim * math.log(orig / (nrot * 2 * math.pi))) / (2 * math.log(base))

        lo, hi = corr(bf), corr(bs)
        if rp.get("truncate", True):
            lo, hi = math.floor(lo), math.ceil(hi)
        lo, hi = max(lo, 0), min(hi, dim - 1)
        ramp = [min(max((i - lo) / ((hi + 0.001 if hi == lo else hi) - lo), 0.0), 1.0) for i in range(dim // 2)]
        kinds = ["extrapolate" if r == 0 else ("interpolate" if r == 1 else "mix") for r in ramp]
        assert {"extrapolate", "interpolate", "mix"} <= set(kinds), (lo, hi, kinds)
        rep = {"low": lo, "high": hi, "ramp": ramp, "kinds": kinds}
    rep["inv_freq_ratio_to_unscaled"] = [float(x) for x in (inv / plain).tolist()]
    return rep


def layers_report(model) -> list[dict]:
    cfg = model.config
    out = []
    remb = model.model.rotary_emb
    for i, layer in enumerate(model.model.layers):
        attn = layer.self_attn
        lt = cfg.layer_types[i] if getattr(cfg, "layer_types", None) else "full_attention"
        rp = cfg.rope_parameters
        if isinstance(rp, dict) and lt in rp and isinstance(rp[lt], dict):
            params = rp[lt]
            inv = getattr(remb, f"{lt}_inv_freq")
            scale = getattr(remb, f"{lt}_attention_scaling")
        else:
            params = rp
            inv = remb.inv_freq
            scale = remb.attention_scaling
        out.append(
            {
                "layer": i,
                "layer_type": lt,
                "attention": "sliding" if getattr(attn, "sliding_window", None) else "full",
                "sliding_window": getattr(attn, "sliding_window", None),
                "attn_scaling": float(attn.scaling),
                "rope_parameters": dict(sorted(params.items())),
                "rope_attention_scaling": float(scale),
                "inv_freq": f32list(inv),
            }
        )
    return out


# ---------------------------------------------------------------------------------------------
# Model fixtures
# ---------------------------------------------------------------------------------------------


def build_case(case: dict, out_root: Path) -> dict:
    name = case["name"]
    cfg_cls, model_cls = case["arch"]
    seed = case_seed(name)
    torch.manual_seed(seed)
    kwargs = dict(case["cfg"])
    cfg = cfg_cls(**kwargs, attn_implementation="eager")
    model = model_cls(cfg).eval()
    randomize_(model, seed, gemma=bool(case.get("gemma")))

    out = out_root / name
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)

    save_dtype = case.get("save_dtype", torch.float32)
    if save_dtype != torch.float32:
        model = model.to(save_dtype)
    save_kw = {}
    if case.get("shard"):
        save_kw["max_shard_size"] = case["shard"]
    model.save_pretrained(out, **save_kw)

    # Golden run: reload what is on disk (config.json round trip included), widen to f32, eager attention.
    ref = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32, attn_implementation="eager").eval()
    ref = ref.float()
    assert type(ref) is model_cls, type(ref)
    vocab = ref.config.vocab_size
    T = case["T"]
    g = torch.Generator().manual_seed(seed + 1)
    ids = torch.randint(0, vocab, (T,), generator=g)
    with torch.inference_mode():
        res = ref(input_ids=ids[None], use_cache=False, output_hidden_states=True)
    logits = res.logits[0].float()
    assert logits.shape == (T, vocab)
    assert torch.isfinite(logits).all()

    # Sanity: in-memory model gives bit-identical logits for f32 cases.
    if save_dtype == torch.float32:
        with torch.inference_mode():
            mem = model(input_ids=ids[None], use_cache=False).logits[0]
        assert torch.equal(mem, logits), (name, (mem - logits).abs().max())
    else:
        # Loading in the stored dtype and then upcasting must agree. (Do NOT upcast the in-memory model:
        # model.to(bf16) also rounded its non-persistent inv_freq buffer, which a fresh load recomputes in f32.)
        auto = AutoModelForCausalLM.from_pretrained(out, attn_implementation="eager").eval()
        assert auto.dtype == save_dtype, auto.dtype
        with torch.inference_mode():
            mem = auto.float()(input_ids=ids[None], use_cache=False).logits[0]
        assert torch.equal(mem, logits), (name, (mem - logits).abs().max())

    (out / "logits.f32").write_bytes(f32_le_bytes(logits))

    # hidden_states: HF's output_hidden_states -> [embeddings(after scaling), after layer 0, ..., after
    # layer L-2, final_norm(after layer L-1)] (the last entry is post-norm in this version; verified below).
    hs = torch.stack([h[0] for h in res.hidden_states]).float()
    with torch.inference_mode():
        last = ref.model(input_ids=ids[None], use_cache=False).last_hidden_state[0]
    assert torch.equal(hs[-1], last)
    if case.get("hidden_states"):
        (out / "hidden_states.f32").write_bytes(f32_le_bytes(hs))

    # The pre-v5 ("legacy") config.json layout must give bit-identical logits in HF too.
    cfg_json = json.loads((out / "config.json").read_text())
    legacy = legacy_config(cfg_json)
    with tempfile.TemporaryDirectory() as td:
        for f in out.iterdir():
            if f.name != "config.json":
                shutil.copy(f, Path(td) / f.name)
        jdump(legacy, Path(td) / "config.json")
        leg = AutoModelForCausalLM.from_pretrained(td, dtype=torch.float32, attn_implementation="eager").eval()
        with torch.inference_mode():
            leg_logits = leg(input_ids=ids[None], use_cache=False).logits[0]
        assert torch.equal(leg_logits, logits), (name, "legacy config mismatch")
        assert getattr(leg.config, "layer_types", None) == getattr(ref.config, "layer_types", None)
    jdump(legacy, out / "config.legacy.json")

    rope_info = rope_band_report(case, ref) if case.get("check") else None
    golden = {
        "case": name,
        "arch": type(ref).__name__,
        "model_type": ref.config.model_type,
        "ids": ids.tolist(),
        "shape": [T, vocab],
        "dtype_saved": str(save_dtype).replace("torch.", ""),
        "compute_dtype": "float32",
        "attn_implementation": "eager",
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "seed": seed,
        "files": {
            "logits.f32": f"little-endian float32 row-major [{T}, {vocab}]",
            "hidden_states.f32": f"little-endian float32 row-major [{hs.shape[0]}, {T}, {hs.shape[2]}]: "
            "index 0 = token embeddings (incl. any embed scale), index l (1..L-1) = residual stream after "
            "decoder layer l-1, index L = final RMSNorm(after last layer)",
            "config.legacy.json": "same model in the pre-transformers-5 config layout (rope_theta/"
            "rope_scaling/...); HF gives bit-identical logits with it",
        },
        "logit_stats": {
            "absmax": float(logits.abs().max()),
            "std": float(logits.std()),
        },
        "notes": case["notes"],
    }
    if save_dtype != torch.float32:
        golden["notes"] += (
            " Golden computed with AutoModelForCausalLM.from_pretrained(dir, dtype=float32).float(): "
            "weights are the stored low-precision values exactly widened to f32; no compute in "
            f"{golden['dtype_saved']}."
        )
    if not case.get("hidden_states"):
        del golden["files"]["hidden_states.f32"]
    if rope_info is not None:
        golden["rope_check"] = rope_info
    remb = ref.model.rotary_emb
    if hasattr(remb, "inv_freq"):
        golden["rope"] = {"inv_freq": f32list(remb.inv_freq), "attention_scaling": float(remb.attention_scaling)}
    jdump(golden, out / "golden.json")

    if case.get("layers_json"):
        jdump({"case": name, "layers": layers_report(ref)}, out / "layers.json")

    n_params = sum(p.numel() for p in ref.parameters())
    files = sorted(out.iterdir())
    return {
        "case": name,
        "arch": type(ref).__name__,
        "params": n_params,
        "dtype": golden["dtype_saved"],
        "T": T,
        "vocab": vocab,
        "weights_bytes": sum(f.stat().st_size for f in files if f.suffix == ".safetensors"),
        "dir_bytes": sum(f.stat().st_size for f in files),
        "nfiles": len(files),
    }


# ---------------------------------------------------------------------------------------------
# Tokenizer fixture
# ---------------------------------------------------------------------------------------------

# Qwen2 / Qwen2.5 pre-tokenizer split pattern (as in their tokenizer.json).
QWEN_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

TOKEN_CORPUS = """\
The quick brown fox jumps over the lazy dog. The dog sleeps; the fox runs away.
KV-cache eviction keeps the most important keys and values and drops the rest.
def attention(query, key, value):
    scores = query @ key.T / sqrt(d)
    return softmax(scores) @ value

Numbers: 0 1 2 3 4 5 6 7 8 9 10 42 128 2048 3.14159 1e-4
It's what they'll say: we're here, you've seen it, I'm sure, he'd know.
    Indented line with    several   spaces.
Tabs\tand\ttabs.
<html><body>hello world</body></html>
the the the and and of of to to in in is is that that for for with with
Hello, world! Hello again, world? Yes -- hello.
naïve café résumé coöperate — “quotes” ‘single’ … ellipsis
日本語のテキスト。中文文本。한국어 텍스트.
emoji: 🚀 🦀 ❤️ 👍🏽 😀
"""

TOKEN_STRINGS = [
    "Hello, world! The quick brown fox.",
    "Numbers 0123456789 and 3.14159, 2048 tokens.",
    "punctuation!!! (yes?) [no] {maybe}; a:b -- c/d \\ e... 'quoted' \"double\"",
    "spaces  two   three    four\t\ttabs  \t mixed   ",
    "line1\nline2\r\n\n\n   indented\n\ttabbed\n",
    "I love 🦀 and 🚀! ❤️ 👍🏽",
    "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
    "naïve café — 日本語 e\u0301 (decomposed e+acute)",
    "It's they'll WE'RE I'M you've",
]

CHAT_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif %}\n"
    "{%- for message in messages %}\n"
    "    {%- if not (loop.first and message['role'] == 'system') %}\n"
    "        {{- '<|im_start|>' + message['role'] + '\\n' + message['content'] | trim + '<|im_end|>\\n' }}\n"
    "    {%- endif %}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n"
    "    {{- '<|im_start|>assistant\\n' }}\n"
    "{%- endif %}\n"
)

CHAT_MESSAGES = [
    {"role": "user", "content": "What is a KV cache?  "},
    {"role": "assistant", "content": "It stores keys and values.\nFor reuse!"},
]


def build_tokenizer(out: Path) -> dict:
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|begin_of_text|>"]
    tok = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN_SPLIT), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    trainer = trainers.BpeTrainer(
        vocab_size=360,
        min_frequency=2,
        show_progress=False,
        special_tokens=[],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator([TOKEN_CORPUS] * 3, trainer=trainer)
    # Specials appended after the BPE vocab (like Qwen's added tokens, ids >= base vocab).
    tok.add_special_tokens(specials)
    bos_id = tok.token_to_id("<|begin_of_text|>")
    # Llama-3 style BOS insertion so add_special_tokens=True is observable; ByteLevel first (no-op on ids).
    tok.post_processor = processors.Sequence(
        [
            processors.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
            processors.TemplateProcessing(
                single="<|begin_of_text|> $A",
                pair="<|begin_of_text|> $A <|begin_of_text|>:1 $B:1",
                special_tokens=[("<|begin_of_text|>", bos_id)],
            ),
        ]
    )
    tok.save(str(out / "tokenizer.json"), pretty=True)

    tok_cfg = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<|begin_of_text|>",
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "unk_token": None,
        "add_bos_token": True,
        "clean_up_tokenization_spaces": False,
        "model_max_length": 4096,
        "chat_template": CHAT_TEMPLATE,
    }
    jdump(tok_cfg, out / "tokenizer_config.json")

    # Reload from disk so goldens come from the serialized file.
    tok = Tokenizer.from_file(str(out / "tokenizer.json"))
    cases = []
    for s in TOKEN_STRINGS:
        e0 = tok.encode(s, add_special_tokens=False)
        e1 = tok.encode(s, add_special_tokens=True)
        cases.append(
            {
                "text": s,
                "ids": e0.ids,
                "tokens": e0.tokens,
                "ids_with_special": e1.ids,
                "decoded": tok.decode(e0.ids, skip_special_tokens=False),
                "decoded_skip_special": tok.decode(e0.ids, skip_special_tokens=True),
                "decoded_with_special": tok.decode(e1.ids, skip_special_tokens=False),
            }
        )

    # Chat template: plain jinja2 with transformers' settings, cross-checked against apply_chat_template.
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    rendered = env.from_string(CHAT_TEMPLATE).render(
        messages=CHAT_MESSAGES, add_generation_prompt=True, bos_token="<|begin_of_text|>", eos_token="<|im_end|>"
    )
    rendered_nogen = env.from_string(CHAT_TEMPLATE).render(
        messages=CHAT_MESSAGES, add_generation_prompt=False, bos_token="<|begin_of_text|>", eos_token="<|im_end|>"
    )
    hf_check = {}
    try:
        from transformers import AutoTokenizer

        hft = AutoTokenizer.from_pretrained(str(out))
        via_hf = hft.apply_chat_template(CHAT_MESSAGES, tokenize=False, add_generation_prompt=True)
        assert via_hf == rendered, (via_hf, rendered)
        for c in cases:
            assert hft.encode(c["text"], add_special_tokens=False) == c["ids"], c["text"]
            assert hft.encode(c["text"], add_special_tokens=True) == c["ids_with_special"], c["text"]
        hf_check = {"transformers_apply_chat_template_matches": True, "transformers_encode_matches": True}
    except ImportError:  # pragma: no cover
        pass

    import tokenizers

    golden = {
        "tokenizers": tokenizers.__version__,
        "transformers": transformers.__version__,
        "jinja2": jinja2.__version__,
        "vocab_size_with_added": tok.get_vocab_size(with_added_tokens=True),
        "special_tokens": {t: tok.token_to_id(t) for t in specials},
        "bos_token": "<|begin_of_text|>",
        "eos_token": "<|im_end|>",
        "notes": "Qwen2-style byte-level BPE (NFC normalizer, Split(regex, isolated) + ByteLevel(use_regex=false) "
        "pre-tokenizer, ByteLevel decoder) plus a Llama-3-style TemplateProcessing post-processor that "
        "prepends <|begin_of_text|> when add_special_tokens=true. Special tokens in the input text are "
        "matched as whole added tokens (never BPE-split). ids=encode(text, add_special_tokens=False); "
        "ids_with_special=encode(text, add_special_tokens=True); decoded*=decode(...).",
        "cases": cases,
        "chat": {
            "messages": CHAT_MESSAGES,
            "add_generation_prompt": True,
            "rendered": rendered,
            "ids": tok.encode(rendered, add_special_tokens=False).ids,
            "rendered_no_generation_prompt": rendered_nogen,
            "jinja_env": "ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)",
            **hf_check,
        },
    }
    jdump(golden, out / "golden.json")
    return {"vocab": golden["vocab_size_with_added"], "bytes": sum(f.stat().st_size for f in out.iterdir())}


# ---------------------------------------------------------------------------------------------


def generate(hf_root: Path, tok_root: Path, only: list[str] | None, quiet: bool = False) -> list[dict]:
    torch.set_num_threads(1)  # bitwise reproducibility of CPU reductions
    torch.use_deterministic_algorithms(True)
    rows = []
    for case in CASES:
        if only and case["name"] not in only:
            continue
        rows.append(build_case(case, hf_root))
        if not quiet:
            r = rows[-1]
            print(f"  built {r['case']}", file=sys.stderr)
    if not only or "tokenizer" in only:
        t = build_tokenizer(tok_root)
        rows.append({"case": "tokenizer", "arch": "tokenizers BPE", "params": t["vocab"], "dtype": "-", "T": 0,
                     "vocab": t["vocab"], "weights_bytes": 0, "dir_bytes": t["bytes"], "nfiles": 3})
    return rows


def print_table(rows: list[dict]) -> None:
    hdr = f"{'case':24} {'arch':22} {'params':>8} {'dtype':>9} {'T':>3} {'vocab':>5} {'weights':>9} {'dir':>9} files"
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        print(
            f"{r['case']:24} {r['arch']:22} {r['params']:>8} {r['dtype']:>9} {r['T']:>3} {r['vocab']:>5} "
            f"{r['weights_bytes']:>9} {r['dir_bytes']:>9} {r['nfiles']:>5}"
        )
    print(f"total bytes: {sum(r['dir_bytes'] for r in rows)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", action="append", help="case name (repeatable); 'tokenizer' for the tokenizer")
    ap.add_argument("--check", action="store_true", help="regenerate into a temp dir and compare with the repo")
    args = ap.parse_args()

    if args.check:
        with tempfile.TemporaryDirectory() as td:
            hf, tk = Path(td) / "hf", Path(td) / "tokenizer"
            generate(hf, tk, args.only, quiet=True)
            bad = []
            for a, b in ((hf, HF_OUT), (tk, TOK_OUT)):
                for f in sorted(a.rglob("*")):
                    if f.is_file():
                        g = b / f.relative_to(a)
                        if not g.exists() or not filecmp.cmp(f, g, shallow=False):
                            bad.append(str(g.relative_to(REPO)))
            if bad:
                print("DIFFERENT:\n  " + "\n  ".join(bad))
                sys.exit(1)
            print("fixtures are byte-identical to a fresh regeneration")
        return

    rows = generate(HF_OUT, TOK_OUT, args.only)
    print(f"transformers {transformers.__version__}  torch {torch.__version__}  numpy {np.__version__}")
    print_table(rows)


if __name__ == "__main__":
    main()
