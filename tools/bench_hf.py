#!/usr/bin/env python3
"""Side-by-side speed reference: HF transformers (torch CPU, float32 compute, SDPA attention).

  .venv/bin/python tools/bench_hf.py --model <hf-dir> --threads 2 --prefill 2048 \
      --decode-context 2048 --decode-steps 16 --json out.json

Measures
  prefill: one forward over `--prefill` random ids (no KV cache, logits only for the last position
           unless --all-logits), after one untimed warm-up forward of `--warmup-len` ids.
  decode:  prefill `--decode-context` random ids with use_cache=True (DynamicCache, untimed), then
           `--decode-warmup` untimed single-token steps, then `--decode-steps` timed single-token steps
           (greedy next id). Reports median and mean ms/token.

Optional helper to create a random model dir to bench against:
  .venv/bin/python tools/bench_hf.py --make-random-model qwen3-0.6b --model /tmp/q06 [--save-dtype bf16]
  .venv/bin/python tools/bench_hf.py --make-random-model tiny --model /tmp/tiny
(then run again without --make-random-model). Dev-only tool; never used by evictbench at runtime.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import AutoConfig, AutoModelForCausalLM, DynamicCache  # noqa: E402

transformers.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()

SHAPES = {
    # Qwen3-0.6B geometry with a 32k vocab (what the evictbench bench generates).
    "qwen3-0.6b": dict(
        vocab_size=32000,
        hidden_size=1024,
        intermediate_size=3072,
        num_hidden_layers=28,
        num_attention_heads=16,
        num_key_value_heads=8,
        head_dim=128,
        max_position_embeddings=40960,
        rms_norm_eps=1e-6,
        rope_theta=1000000.0,
        tie_word_embeddings=True,
    ),
    "tiny": dict(
        vocab_size=1000,
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=32,
        max_position_embeddings=8192,
        rms_norm_eps=1e-6,
        rope_theta=1000000.0,
        tie_word_embeddings=True,
    ),
}

DTYPES = {"f32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
          "f16": torch.float16, "float16": torch.float16}


def make_random_model(shape: str, out: Path, save_dtype: torch.dtype, seed: int) -> None:
    from transformers import Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(seed)
    cfg = Qwen3Config(**SHAPES[shape])
    with torch.device("cpu"):
        model = Qwen3ForCausalLM(cfg)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            elif "embed" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
            else:
                p.copy_(torch.randn(p.shape, generator=g) * (p.shape[-1] ** -0.5))
    model = model.to(save_dtype)
    model.save_pretrained(out)
    n = sum(p.numel() for p in model.parameters())
    print(f"wrote {shape} random Qwen3 model ({n / 1e6:.1f}M params, {save_dtype}) to {out}")


def ms(t0: float, t1: float) -> float:
    return (t1 - t0) * 1000.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="HF model directory (config.json + safetensors)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prefill", type=int, default=2048, help="prefill length (tokens); 0 skips prefill")
    ap.add_argument("--warmup-len", type=int, default=128, help="untimed warm-up forward length")
    ap.add_argument("--decode-context", type=int, default=2048, help="context length before decoding")
    ap.add_argument("--decode-steps", type=int, default=16, help="timed decode steps; 0 skips decode")
    ap.add_argument("--decode-warmup", type=int, default=1, help="untimed decode steps before timing")
    ap.add_argument("--all-logits", action="store_true", help="prefill computes logits for every position")
    ap.add_argument("--attn", default="sdpa", help="attn_implementation (default sdpa)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="write results JSON here")
    ap.add_argument("--make-random-model", choices=sorted(SHAPES), help="create a random model at --model, exit")
    ap.add_argument("--save-dtype", default="f32", choices=sorted(DTYPES), help="with --make-random-model")
    args = ap.parse_args()

    model_dir = Path(args.model)
    if args.make_random_model:
        make_random_model(args.make_random_model, model_dir, DTYPES[args.save_dtype], args.seed)
        return

    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass

    t0 = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation=args.attn)
    model = model.float().eval()
    load_s = time.perf_counter() - t0
    cfg = AutoConfig.from_pretrained(model_dir)
    vocab = model.config.vocab_size
    gen = torch.Generator().manual_seed(args.seed)

    def rand_ids(n: int) -> torch.Tensor:
        return torch.randint(0, vocab, (1, n), generator=gen)

    res: dict = {
        "model": str(model_dir),
        "arch": type(model).__name__,
        "model_type": cfg.model_type,
        "params": sum(p.numel() for p in model.parameters()),
        "stored_dtype": str(getattr(cfg, "dtype", None) or getattr(cfg, "torch_dtype", None)).replace("torch.", ""),
        "compute_dtype": "float32",
        "attn_implementation": args.attn,
        "threads": args.threads,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "cpu": platform.processor() or platform.machine(),
        "load_s": round(load_s, 3),
        "prefill_tokens": args.prefill,
        "prefill_logits": "all" if args.all_logits else "last",
        "decode_context": args.decode_context,
        "decode_steps": args.decode_steps,
    }
    keep = 0 if args.all_logits else 1  # logits_to_keep=0 -> all positions

    with torch.inference_mode():
        if args.prefill > 0:
            wl = max(1, min(args.warmup_len, args.prefill))
            model(input_ids=rand_ids(wl), use_cache=False, logits_to_keep=keep)
            ids = rand_ids(args.prefill)
            t0 = time.perf_counter()
            out = model(input_ids=ids, use_cache=False, logits_to_keep=keep)
            t1 = time.perf_counter()
            assert torch.isfinite(out.logits).all()
            del out
            res["prefill_ms"] = round(ms(t0, t1), 3)
            res["prefill_tokens_per_s"] = round(args.prefill / (t1 - t0), 3)
            print(f"prefill {args.prefill} tok: {res['prefill_ms']:.1f} ms  "
                  f"({res['prefill_tokens_per_s']:.1f} tok/s)", flush=True)

        if args.decode_steps > 0:
            cache = DynamicCache(config=model.config)
            ctx = rand_ids(max(1, args.decode_context))
            t0 = time.perf_counter()
            out = model(input_ids=ctx, past_key_values=cache, use_cache=True, logits_to_keep=1)
            res["decode_context_prefill_ms"] = round(ms(t0, time.perf_counter()), 3)
            cache = out.past_key_values
            nxt = out.logits[:, -1:].argmax(-1)
            times = []
            for step in range(args.decode_warmup + args.decode_steps):
                t0 = time.perf_counter()
                out = model(input_ids=nxt, past_key_values=cache, use_cache=True)
                nxt = out.logits[:, -1:].argmax(-1)
                t1 = time.perf_counter()
                cache = out.past_key_values
                if step >= args.decode_warmup:
                    times.append(ms(t0, t1))
            assert cache.get_seq_length() == ctx.shape[1] + args.decode_warmup + args.decode_steps
            res["decode_ms_per_token_median"] = round(statistics.median(times), 3)
            res["decode_ms_per_token_mean"] = round(statistics.fmean(times), 3)
            res["decode_ms_per_token_min"] = round(min(times), 3)
            res["decode_ms_per_token_max"] = round(max(times), 3)
            print(f"decode @ctx {args.decode_context}: median {res['decode_ms_per_token_median']:.2f} ms/tok, "
                  f"mean {res['decode_ms_per_token_mean']:.2f} ms/tok over {args.decode_steps} steps", flush=True)

    print(json.dumps(res, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
