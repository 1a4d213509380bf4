"""Train the organism model (Qwen3 architecture) through the recipe's length curriculum.

    python tools/organism/train.py --recipe tools/organism/recipe.json --work .cache/organism \
        [--until-stage N] [--max-minutes M]
    python tools/organism/train.py --recipe ... --work ... --export models/<name>

Training reads <work>/data/<stage data>.npz (prepare_data.py; stage-<length> unless the stage
names its data) and keeps its state in <work>/ckpt/state.pt, saved atomically every
--save-every steps and at each stage's end: a killed or time-limited run resumes exactly where
it stopped (batches are drawn from a stream seeded by the global step). The learning rate
follows cosine cycles (lr_cycles): one over the curriculum, and a new one at any stage that
gives "restart_lr" (continued training). On the CPU it trains in bfloat16 autocast (1.7× faster here than
float32, master weights stay float32); on a GPU, when torch sees one, it uses it.

On a GPU a recipe may ask for torch.compile ("gpu": {"compile": true}); the optimizer then
runs fused. A machine that is lent for a while only (and can send back only small files) uses
--save-parts DIR: the weights, float32, in files of at most 15 MB plus the step counters, written
at every save. --load-parts DIR resumes from them where no state.pt exists (the optimizer's
moments start afresh).

--export writes an HF model directory (config.json, model.safetensors in the recipe's
"export_dtype", float32 unless it says bfloat16; generation_config.json) that evictbench loads
like any checkpoint, plus the tokenizer files.
"""

import argparse
import json
import math
import os
import shutil
import threading
import time

import numpy as np
import torch
import torch.nn.functional as F
from transformers import Qwen3Config, Qwen3ForCausalLM


def model_config(recipe):
    m = dict(recipe["model"])
    rope_theta = m.pop("rope_theta")
    return Qwen3Config(
        **m,
        rope_parameters={"rope_type": "default", "rope_theta": rope_theta},
        bos_token_id=None,
        eos_token_id=0,
        pad_token_id=0,
        attn_implementation="sdpa",
    )


def stage_data_name(stage):
    """The stage's packed data file under <work>/data (without .npz): its "data" name when the
    recipe gives one (a second stage at the same length), else stage-<length>."""
    return stage.get("data", f"stage-{stage['length']}")


def lr_cycles(stages, opt):
    """Cosine cycles over the curriculum: the first starts at step 0 with the optimizer's peak;
    a stage with "restart_lr" starts a new cycle there (continued training), warmed up over
    "restart_warmup" steps (default 100). Each cycle decays to min_lr by the next cycle's start."""
    cycles, first = [], 0
    for index, stage in enumerate(stages):
        if index == 0 or "restart_lr" in stage:
            peak = opt["lr"] if index == 0 else stage["restart_lr"]
            warmup = opt["warmup"] if index == 0 else stage.get("restart_warmup", 100)
            cycles.append({"start": first, "peak": peak, "warmup": warmup})
        first += stage["steps"]
    for cycle, following in zip(cycles, cycles[1:] + [{"start": first}]):
        cycle["end"] = following["start"]
    return cycles


def lr_at(step, cycles, opt):
    cycle = [c for c in cycles if c["start"] <= step][-1]
    into = step - cycle["start"]
    if into < cycle["warmup"]:
        return cycle["peak"] * (into + 1) / cycle["warmup"]
    length = cycle["end"] - cycle["start"] - cycle["warmup"]
    progress = min(1.0, (into - cycle["warmup"]) / max(1, length))
    return opt["min_lr"] + 0.5 * (cycle["peak"] - opt["min_lr"]) * (1 + math.cos(math.pi * progress))


class PauseClock:
    """Wall time during which the process was stopped (SIGSTOP … SIGCONT, e.g. while benchmarks
    ran on the same machine): a daemon thread ticks every second, and a gap of more than
    `threshold` seconds between ticks counts as paused. Training time excludes it."""

    def __init__(self, threshold=5.0):
        self.paused = 0.0
        self.threshold = threshold
        self._last = time.time()
        threading.Thread(target=self._tick, daemon=True).start()

    def _tick(self):
        while True:
            time.sleep(1.0)
            now = time.time()
            if now - self._last > self.threshold:
                self.paused += now - self._last - 1.0
            self._last = now


def save_atomic(state, path):
    tmp = path + ".partial"
    torch.save(state, tmp)
    os.replace(tmp, path)


def batch_loss(model, tokens, classes, device, autocast):
    x = torch.from_numpy(tokens.astype(np.int64)).to(device)
    c = torch.from_numpy(classes).to(device)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
        logits = model(input_ids=x[:, :-1]).logits
    ce = F.cross_entropy(logits.float().transpose(1, 2), x[:, 1:], reduction="none")
    cls = c[:, :-1]
    out = {}
    for name, k in (("text", 1), ("answer", 2)):
        mask = cls == k
        n = mask.sum()
        out[name] = (ce * mask).sum() / n.clamp(min=1)
        if name == "answer":
            hit = (logits.argmax(-1) == x[:, 1:]) & mask
            out["answer_acc"] = hit.sum().float() / n.clamp(min=1)
    out["loss"] = out["text"] + out["answer"]
    return out


PART_BYTES = 15_000_000


def save_parts(model, counters, out_dir):
    """The weights in float32 files of at most PART_BYTES (whole tensors), then meta.json."""
    os.makedirs(out_dir, exist_ok=True)
    parts, current, size = [], {}, 0
    for name, tensor in model.state_dict().items():
        nbytes = tensor.numel() * 4
        if current and size + nbytes > PART_BYTES:
            parts.append(current)
            current, size = {}, 0
        current[name] = tensor.detach().float().cpu().clone()
        size += nbytes
    parts.append(current)
    for index, part in enumerate(parts):
        save_atomic(part, os.path.join(out_dir, f"weights-{index}.pt"))
    meta = dict(counters, parts=len(parts))
    with open(os.path.join(out_dir, "meta.json.partial"), "w") as f:
        json.dump(meta, f)
    os.replace(os.path.join(out_dir, "meta.json.partial"), os.path.join(out_dir, "meta.json"))


def read_parts(in_dir, device="cpu"):
    """What save_parts wrote: (the counters of meta.json, the weights by name)."""
    with open(os.path.join(in_dir, "meta.json")) as f:
        meta = json.load(f)
    weights = {}
    for index in range(meta["parts"]):
        weights.update(torch.load(os.path.join(in_dir, f"weights-{index}.pt"), map_location=device))
    return meta, weights


def load_parts(model, in_dir, device):
    meta, weights = read_parts(in_dir, device)
    model.load_state_dict(weights)
    return meta


def export(recipe, model, work, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[recipe.get("export_dtype", "float32")]
    model = model.to("cpu").to(dtype)
    model.save_pretrained(out_dir, safe_serialization=True)
    with open(os.path.join(out_dir, "generation_config.json"), "w") as f:
        json.dump({"eos_token_id": 0, "pad_token_id": 0, "do_sample": False}, f, indent=2)
        f.write("\n")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(work, "tokenizer", name), os.path.join(out_dir, name))
    print(f"exported {recipe['name']} to {out_dir}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipe", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--until-stage", type=int, default=None, help="stop after this stage (0-based)")
    parser.add_argument("--max-minutes", type=float, default=None, help="save and stop after this long")
    parser.add_argument("--save-every", type=int, default=100)
    parser.add_argument("--log-every", type=int, default=25)
    parser.add_argument("--export", default=None, help="write the HF model directory and exit")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--save-parts", default=None, help="also write the weights in small files here")
    parser.add_argument("--load-parts", default=None, help="resume from --save-parts files")
    args = parser.parse_args()

    recipe = json.load(open(args.recipe))
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(recipe["seed"])
    model = Qwen3ForCausalLM(model_config(recipe)).to(device)
    o = recipe["optimizer"]
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": o["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}],
        lr=o["lr"], betas=tuple(o["betas"]), fused=device.type == "cuda",
    )
    stages = recipe["stages"]
    total = sum(s["steps"] for s in stages)
    cycles = lr_cycles(stages, o)
    ckpt_dir = os.path.join(args.work, "ckpt")
    os.makedirs(ckpt_dir, exist_ok=True)
    state_path = os.path.join(ckpt_dir, "state.pt")
    step = 0
    seconds = 0.0
    tokens_seen = 0
    if os.path.exists(state_path):
        state = torch.load(state_path, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, seconds, tokens_seen = state["step"], state["seconds"], state["tokens_seen"]
        print(f"resumed at step {step}/{total} ({seconds / 60:.1f} min trained, {tokens_seen:,} tokens)")
    elif args.load_parts and os.path.exists(os.path.join(args.load_parts, "meta.json")):
        meta = load_parts(model, args.load_parts, device)
        step, seconds, tokens_seen = meta["step"], meta["seconds"], meta["tokens_seen"]
        print(f"resumed from {args.load_parts} at step {step}/{total} (fresh optimizer moments)")

    if args.export:
        export(recipe, model, args.work, args.export)
        return

    params = sum(p.numel() for p in model.parameters())
    print(f"{recipe['name']}: {params:,} parameters, {total} steps in {len(stages)} stages, device {device}")
    log = open(os.path.join(args.work, "train_log.jsonl"), "a")
    started = time.time()
    clock = PauseClock()
    autocast = True
    forward = model
    if device.type == "cuda" and recipe.get("gpu", {}).get("compile", False):
        forward = torch.compile(model)
    gpu_name = torch.cuda.get_device_name(device) if device.type == "cuda" else None

    def state():
        return {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                "seconds": seconds, "tokens_seen": tokens_seen, "recipe": recipe}

    def save():
        save_atomic(state(), state_path)
        if args.save_parts:
            save_parts(model, {"step": step, "seconds": seconds, "tokens_seen": tokens_seen,
                               "torch": torch.__version__}, args.save_parts)

    first = 0
    for index, stage in enumerate(stages):
        last = first + stage["steps"]
        if step >= last:
            first = last
            continue
        if args.until_stage is not None and index > args.until_stage:
            break
        data = np.load(os.path.join(args.work, "data", stage_data_name(stage) + ".npz"))
        tokens, classes = data["tokens"], data["classes"]
        print(f"stage {index}: length {stage['length']}, batch {stage['batch']}, {len(tokens)} rows, steps {step - first}/{stage['steps']}")
        window = {"loss": 0.0, "text": 0.0, "answer": 0.0, "answer_acc": 0.0, "n": 0}
        t_window = t_last = time.time()
        paused_last = clock.paused
        while step < last:
            rng = np.random.default_rng([recipe["seed"], step])
            pick = rng.choice(len(tokens), size=stage["batch"], replace=len(tokens) < stage["batch"])
            for g in optimizer.param_groups:
                g["lr"] = lr_at(step, cycles, o)
            out = batch_loss(forward, tokens[pick], classes[pick], device, autocast)
            optimizer.zero_grad(set_to_none=True)
            out["loss"].backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), o["clip"])
            optimizer.step()
            # Wall time between steps (sampling and, on a GPU, the queue's waits included), less
            # any time the process was stopped.
            now = time.time()
            seconds += max(0.0, now - t_last - (clock.paused - paused_last))
            t_last, paused_last = now, clock.paused
            tokens_seen += int(stage["batch"] * stage["length"])
            step += 1
            # Summed on the device and read at log time, so the GPU never waits on the host.
            for k in ("loss", "text", "answer", "answer_acc"):
                window[k] += out[k].detach()
            window["n"] += 1
            if step % args.log_every == 0 or step == last:
                n = window["n"]
                entry = {"step": step, "stage": index, "length": stage["length"],
                         "lr": optimizer.param_groups[0]["lr"],
                         **{k: round(float(window[k]) / n, 4) for k in ("loss", "text", "answer", "answer_acc")},
                         "s_per_step": round((time.time() - t_window) / n, 3),
                         "minutes": round(seconds / 60, 2)} | ({"gpu": gpu_name} if gpu_name else {})
                log.write(json.dumps(entry) + "\n")
                log.flush()
                print(json.dumps(entry), flush=True)
                window = {k: 0.0 for k in window} | {"n": 0}
                t_window = time.time()
            out_of_time = args.max_minutes is not None and time.time() - started > args.max_minutes * 60
            if step % args.save_every == 0 or step == last or out_of_time:
                save()
            if out_of_time:
                print(f"time limit reached at step {step}; rerun to resume")
                return
        first = last
    save()
    print(f"trained to step {step}/{total}")


if __name__ == "__main__":
    main()
