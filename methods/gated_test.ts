/**
 * `gated` (Fast KVzip) through the shared phases on tiny random models with random gates: its
 * scores are the gate of each token's hidden state, the global threshold keeps exactly the best
 * ones, chunked prefill honours the window rule, decoding holds the budget B·L·H with the sinks
 * and the last 128 entries protected, and a missing or mismatched gate file is one clear error:
 * gates of another shape, or trained for another checkpoint of the same shape (unless
 * `allowOtherModel`). The shipped model's gates name its checkpoint.
 */

import { assert, assertClose, assertEquals, assertRejects } from "../tests/assert.ts";
import { InputError } from "../errors.ts";
import { type LayerTap, Model } from "../engine/model.ts";
import { parseModelConfig } from "../engine/config.ts";
import { makeRandomModel, tinyConfigJson } from "../engine/random_model.ts";
import { checkpointFingerprint } from "../engine/safetensors.ts";
import type { ModelConfig } from "../engine/types.ts";
import { gateDimsFor, gatedLayers, gateForward } from "./gates/gate.ts";
import { MODEL_FINGERPRINT_KEY, readGateFile, writeGateFile } from "./gates/gate_file.ts";
import { withTinyModel } from "./gates/testing.ts";
import { randomGates } from "./gates/gate.ts";
import { gated, releaseGatedSessions } from "./gated.ts";
import {
  chunkedPrefillWithEviction,
  generateWithEviction,
  prefillWithEviction,
  type PromptParts,
} from "./phases.ts";

const LONG = { max_position_embeddings: 4096 };

function prompt(n: number, seed: number): PromptParts {
  let x = seed;
  const next = () => (x = (x * 1103515245 + 12345) % 2147483648) % 280;
  return {
    prefix: Int32Array.from({ length: 6 }, next),
    context: Int32Array.from({ length: n }, next),
  };
}

async function configOf(dir: string): Promise<ModelConfig> {
  return parseModelConfig(JSON.parse(await Deno.readTextFile(`${dir}/config.json`)));
}

async function withGatedModel(
  arch: "qwen3" | "gemma3",
  fn: (model: Model, dir: string) => Promise<void>,
): Promise<void> {
  await withTinyModel({ arch, seed: 4, overrides: LONG }, async (dir) => {
    const config = await configOf(dir);
    await writeGateFile(
      `${dir}/gates.safetensors`,
      randomGates(gateDimsFor(config), { layers: gatedLayers(config), seed: 8 }),
    );
    try {
      await fn(await Model.load(dir, { threads: 1 }), dir);
    } finally {
      await releaseGatedSessions();
    }
  });
}

Deno.test("gated: scores are the gate of each hidden state; the global threshold keeps the best", async () => {
  for (const arch of ["qwen3", "gemma3"] as const) {
    await withGatedModel(arch, async (model, dir) => {
      const p = prompt(90, 3);
      const result = await prefillWithEviction(model, p, {
        method: "gated",
        keptRatio: 0.3,
        keepScores: true,
      });
      // Independent: hidden states of the same ids, gated by the plain-loop forward.
      const ids = Int32Array.from([...p.prefix, ...p.context]);
      const hidden = new Map<number, Float32Array>();
      await model.forward(ids, model.createCache(), {
        logits: "none",
        taps: { onLayer: (tap: LayerTap) => void hidden.set(tap.layer, tap.hidden.slice()) },
      });
      const config = await configOf(dir);
      const gates = randomGates(gateDimsFor(config), { layers: gatedLayers(config), seed: 8 });
      const T = ids.length;
      const s = p.prefix.length;
      let keptMin = Infinity;
      let evictedMax = -Infinity;
      for (const w of gates.layers) {
        const want = gateForward({ dims: gates.dims, weights: w }, hidden.get(w.layer)!);
        for (let h = 0; h < config.numKvHeads; h++) {
          const got = result.scores!.scores[w.layer][h];
          assertClose(got, want.subarray(h * T, (h + 1) * T), 1e-4, 1e-6);
          const held = new Set(result.cache.segment(w.layer, h).positions);
          for (let t = s; t < T; t++) {
            const v = want[h * T + t];
            if (held.has(t)) keptMin = Math.min(keptMin, v);
            else evictedMax = Math.max(evictedMax, v);
          }
        }
      }
      assert(keptMin > evictedMax, `${arch}: kept ≥ ${keptMin}, evicted ≤ ${evictedMax}`);
      const achieved = result.report.keptRatioAchieved;
      assert(Math.abs(achieved - 0.3) < 0.02, `${arch}: kept ratio ${achieved}`);
    });
  }
});

Deno.test("gated: prefill chunks batched across gate calls score exactly as one call", async () => {
  await withGatedModel("qwen3", async (model) => {
    const p = prompt(90, 3);
    const once = await prefillWithEviction(model, p, {
      method: "gated",
      keptRatio: 0.3,
      keepScores: true,
    });
    // Chunks of 16 ≥ buffer 8: rows wait across chunks for one gate call per layer, flushed
    // when the eviction reads the scores.
    const batched = await prefillWithEviction(model, p, {
      method: "gated",
      params: { buffer: 8 },
      keptRatio: 0.3,
      keepScores: true,
      chunkSize: 16,
    });
    const a = once.scores!.scores;
    const b = batched.scores!.scores;
    for (let layer = 0; layer < a.length; layer++) {
      for (let h = 0; h < a[layer].length; h++) {
        assertClose(b[layer][h], a[layer][h], 1e-4, 1e-6);
      }
    }
  });
});

Deno.test("gated: chunked prefill keeps r of the context with the lagging window intact", async () => {
  await withGatedModel("qwen3", async (model) => {
    const p = prompt(200, 5);
    const result = await chunkedPrefillWithEviction(model, p, {
      method: "gated",
      keptRatio: 0.4,
      chunk: 64,
      window: 20,
    });
    assert(result.evictions.length >= 3, `${result.evictions.length} evictions`);
    const achieved = result.report.keptRatioAchieved;
    assert(Math.abs(achieved - 0.4) < 0.02, `kept ratio ${achieved}`);
    const s = p.prefix.length;
    const end = s + p.context.length;
    for (let l = 0; l < 3; l++) {
      for (let h = 0; h < 2; h++) {
        const held = new Set(result.cache.segment(l, h).positions);
        for (let t = 0; t < s; t++) assert(held.has(t), "prefix kept");
        // n = 200 ≥ chunk, so the window stays 20 (no 2 % rule).
        for (let t = end - 20; t < end; t++) assert(held.has(t), `window position ${t} kept`);
      }
    }
  });
});

Deno.test("gated: decoding holds B·L·H with the first 4 and the last 128 entries protected", async () => {
  await withGatedModel("qwen3", async (model) => {
    const ids = prompt(150, 9);
    const promptIds = Int32Array.from([...ids.prefix, ...ids.context]);
    const B = 140;
    const out = await generateWithEviction(model, promptIds, {
      maxNewTokens: 300,
      eosTokenIds: [],
      eviction: { method: "gated", entriesPerHead: B },
    });
    assert(out.evictions.length >= 2, `${out.evictions.length} evictions`);
    const cache = out.cache;
    const L = 3;
    const H = 2;
    let total = 0;
    for (let l = 0; l < L; l++) {
      for (let h = 0; h < H; h++) {
        const pos = cache.segment(l, h).positions;
        total += pos.length;
        for (let t = 0; t < 4; t++) assert(pos.includes(t), `sink ${t} kept in ${l}/${h}`);
      }
    }
    // After the last eviction at most 127 more tokens were appended to every head.
    assert(total <= B * L * H + 127 * L * H, `${total} entries for B·L·H = ${B * L * H}`);
    const last = out.evictions[out.evictions.length - 1];
    const held = last.entries.flat().reduce((a, b) => a + b, 0);
    assert(held <= B * L * H + 2 * L * H, `after eviction: ${held}`); // ties at τ may keep a few
    for (const row of last.entries) for (const n of row) assert(n >= 128 + 4, `head holds ${n}`);
  });
});

Deno.test("gated: a missing or mismatched gate file is one clear InputError", async () => {
  await withTinyModel({ arch: "qwen3", seed: 1 }, async (dir) => {
    const model = await Model.load(dir, { threads: 1 });
    const p = prompt(30, 1);
    const e = await assertRejects(
      () => prefillWithEviction(model, p, { method: "gated", keptRatio: 0.5 }),
      InputError,
      `no gate file at ${dir}/gates.safetensors`,
    );
    assert(!e.message.includes("\n"));
    const llama = parseModelConfig(tinyConfigJson("llama"));
    const other = `${dir}/llama_gates.safetensors`;
    await writeGateFile(
      other,
      randomGates(gateDimsFor(llama), { layers: gatedLayers(llama), seed: 1 }),
    );
    await assertRejects(
      () =>
        prefillWithEviction(model, p, {
          method: "gated",
          keptRatio: 0.5,
          params: { gates: other },
        }),
      InputError,
      `${other}: gates are for hidden size 40, 1 KV heads, group 5, but ${dir} has hidden size 40, 2 KV heads, group 3`,
    );
    await releaseGatedSessions();
  });
});

Deno.test("gated: gates retrained in place are read again, and artifacts identify the file", async () => {
  await withGatedModel("qwen3", async (model, dir) => {
    const p = prompt(60, 5);
    const scores = async () =>
      (await prefillWithEviction(model, p, { method: "gated", keptRatio: 0.5, keepScores: true }))
        .scores!.scores[0][0].slice();
    const config = await configOf(dir);
    const artifacts = gated.artifacts!;
    const before = await artifacts({ gates: "", buffer: 128, allowOtherModel: false }, {
      dir,
      config,
    });
    const first = await scores();
    // Other gates at the same path, a moment later (a later modification time).
    await new Promise((resolve) => setTimeout(resolve, 20));
    await writeGateFile(
      `${dir}/gates.safetensors`,
      randomGates(gateDimsFor(config), { layers: gatedLayers(config), seed: 9 }),
    );
    const second = await scores();
    assert(first.some((v, i) => v !== second[i]), "the new gates must score");
    const after = await artifacts({ gates: "", buffer: 128, allowOtherModel: false }, {
      dir,
      config,
    });
    assert(/^gates sha256:[0-9a-f]{16}$/.test(before) && after !== before, `${before} ${after}`);
    await assertRejects(
      () =>
        artifacts({ gates: `${dir}/none.safetensors`, buffer: 128, allowOtherModel: false }, {
          dir,
          config,
        }),
      InputError,
      "no gate file",
    );
  });
});

Deno.test("gated: gates trained for another checkpoint of the same shape are refused unless allowOtherModel", async () => {
  // Two checkpoints of one shape (other seeds): the second stands for a fine-tune of the first.
  await withTinyModel({ arch: "qwen3", seed: 1 }, async (base) => {
    await withTinyModel({ arch: "qwen3", seed: 2 }, async (tuned) => {
      const config = await configOf(base);
      const gates = randomGates(gateDimsFor(config), { layers: gatedLayers(config), seed: 3 });
      const trainedFor = await checkpointFingerprint(base);
      const other = await checkpointFingerprint(tuned);
      const path = `${base}/trained.safetensors`;
      await writeGateFile(path, gates, { metadata: { [MODEL_FINGERPRINT_KEY]: trainedFor } });
      const artifacts = gated.artifacts!;
      const params = (gates: string, allowOtherModel = false) => ({
        gates,
        buffer: 128,
        allowOtherModel,
      });
      try {
        // The checkpoint it was trained for.
        const id = await artifacts(params(path), { dir: base, config });
        assert(/^gates sha256:[0-9a-f]{16}$/.test(id), id);

        // Another checkpoint of the same shape: preflight and the scorer both refuse it.
        const refusal = `${path}: gates were trained for checkpoint ${trainedFor}, but ${tuned} ` +
          `is checkpoint ${other}`;
        const e = await assertRejects(
          () => artifacts(params(path), { dir: tuned, config }),
          InputError,
          refusal,
        );
        assert(!e.message.includes("\n"), e.message);
        assert(e.message.includes("allowOtherModel: true"), e.message);
        const model = await Model.load(tuned, { threads: 1 });
        const p = prompt(40, 2);
        await assertRejects(
          () =>
            prefillWithEviction(model, p, {
              method: "gated",
              keptRatio: 0.5,
              params: { gates: path },
            }),
          InputError,
          refusal,
        );

        // Deliberately: the override accepts it, with the same file identity.
        assertEquals(await artifacts(params(path, true), { dir: tuned, config }), id);
        const result = await prefillWithEviction(model, p, {
          method: "gated",
          keptRatio: 0.5,
          params: { gates: path, allowOtherModel: true },
        });
        assert(Math.abs(result.report.keptRatioAchieved - 0.5) < 0.05);

        // A file that names no checkpoint (older files, converted official gates) is accepted.
        const unnamed = `${base}/unnamed.safetensors`;
        await writeGateFile(unnamed, gates);
        await artifacts(params(unnamed), { dir: tuned, config });
        await prefillWithEviction(model, p, {
          method: "gated",
          keptRatio: 0.5,
          params: { gates: unnamed },
        });
      } finally {
        await releaseGatedSessions();
      }
    });
  });
});

Deno.test("gated: the shipped model's gates name its checkpoint; a random model of its shape is refused", async () => {
  const shipped = new URL("../models/organism-qwen3-10m", import.meta.url).pathname;
  const config = await configOf(shipped);
  const path = `${shipped}/gates.safetensors`;
  const { metadata } = await readGateFile(path, { config });
  assertEquals(metadata[MODEL_FINGERPRINT_KEY], await checkpointFingerprint(shipped));
  const artifacts = gated.artifacts!;
  try {
    await artifacts({ gates: "", buffer: 128, allowOtherModel: false }, { dir: shipped, config });
    const json = JSON.parse(await Deno.readTextFile(`${shipped}/config.json`));
    const dir = await Deno.makeTempDir({ prefix: "evictbench_gated_test_" });
    try {
      await makeRandomModel(dir, { arch: "qwen3", seed: 7, dtype: "BF16", overrides: json });
      const same = await configOf(dir);
      await assertRejects(
        () =>
          artifacts({ gates: path, buffer: 128, allowOtherModel: false }, { dir, config: same }),
        InputError,
        `${path}: gates were trained for checkpoint ${metadata[MODEL_FINGERPRINT_KEY]}`,
      );
      await artifacts({ gates: path, buffer: 128, allowOtherModel: true }, { dir, config: same });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  } finally {
    await releaseGatedSessions();
  }
});
