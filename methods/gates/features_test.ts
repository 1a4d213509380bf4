/**
 * Gate training data on tiny random models: the KVzip targets equal a plain-loop transcription
 * of spec §2.1 (restricted softmax over prefix + chunk + pass keys, max over the pass's queries
 * and the group's heads), whatever the forward chunking; the streamed hidden states are the
 * prefill's taps; shards round-trip through FeatureSet.gather; extraction resumes and refuses a
 * directory made with other settings.
 */

import { assert, assertClose, assertEquals, assertRejects } from "../../tests/assert.ts";
import { InputError } from "../../errors.ts";
import { type LayerTap, Model } from "../../engine/model.ts";
import { roundToBf16 } from "../../engine/safetensors.ts";
import { type KvStore, referenceAttention } from "../../kernels/kv_store.ts";
import { gpuTest } from "../../kernels/webgpu/test_support.ts";
import { gatedLayers } from "./gate.ts";
import { extractFeatures, FeatureSet, kvzipPrompt, kvzipSample, REPEAT_TAIL } from "./features.ts";
import { generatedText, withTinyModel } from "./testing.ts";

const LONG = { max_position_embeddings: 4096 };

/** Spec §2.1 by hand: one whole forward per pass, every probability from scratch. */
async function handTargets(
  model: Model,
  prompt: ReturnType<typeof kvzipPrompt>,
  context: Int32Array,
  chunk: number,
): Promise<Float32Array> {
  const c = model.config;
  const layers = gatedLayers(c);
  const L = layers.length;
  const H = c.numKvHeads;
  const G = c.numHeads / H;
  const hd = c.headDim;
  const s = prompt.prefix.length;
  const n = context.length;
  const keysOf = new Map<number, Float32Array[]>(); // layer → key rows [T, H, hd] per forward
  const cache = model.createCache();
  const record = (tap: LayerTap) => {
    const list = keysOf.get(tap.layer) ?? [];
    list.push(tap.keys.slice());
    keysOf.set(tap.layer, list);
  };
  const ids = new Int32Array(s + n);
  ids.set(prompt.prefix);
  ids.set(context, s);
  await model.forward(ids, cache, { logits: "none", taps: { onLayer: record } });
  const targets = new Float32Array(n * L * H);
  for (let a = 0, i = 0; a < n; a += chunk, i++) {
    const b = Math.min(n, a + chunk);
    const q = i === 0
      ? Array.from(prompt.repeatFirst)
      : [...prompt.repeatNext, ...context.subarray(Math.max(0, a - REPEAT_TAIL), a)];
    const r = Int32Array.from([...q, ...prompt.assistant, ...context.subarray(a, b)]);
    const mark = cache.mark();
    const taps = new Map<number, LayerTap>();
    await model.forward(r, cache, {
      logits: "none",
      taps: {
        onLayer: (tap) => void taps.set(tap.layer, { ...tap, queries: tap.queries.slice() }),
      },
    });
    cache.restore(mark);
    layers.forEach((layer, li) => {
      const full = keysOf.get(layer)![0]; // [s + n, H, hd]
      const pass = taps.get(layer)!;
      const passKeys = pass.keys; // [|r|, H, hd]
      for (let h = 0; h < H; h++) {
        const key = (row: number) =>
          row < s
            ? full.subarray((row * H + h) * hd, (row * H + h + 1) * hd)
            : row < s + (b - a)
            ? full.subarray(((s + a + row - s) * H + h) * hd, ((s + a + row - s) * H + h + 1) * hd)
            : passKeys.subarray(
              ((row - s - (b - a)) * H + h) * hd,
              ((row - s - (b - a)) * H + h + 1) * hd,
            );
        for (let g = 0; g < G; g++) {
          for (let t = 0; t < r.length; t++) {
            const qv = pass.queries.subarray(
              (t * c.numHeads + h * G + g) * hd,
              (t * c.numHeads + h * G + g + 1) * hd,
            );
            const visible = s + (b - a) + t + 1;
            const logits = new Float64Array(visible);
            let max = -Infinity;
            for (let j = 0; j < visible; j++) {
              const kv = key(j);
              let dot = 0;
              for (let e = 0; e < hd; e++) dot += qv[e] * kv[e];
              logits[j] = dot * c.attnScale;
              max = Math.max(max, logits[j]);
            }
            let sum = 0;
            for (let j = 0; j < visible; j++) sum += Math.exp(logits[j] - max);
            for (let j = s; j < s + (b - a); j++) {
              const p = Math.exp(logits[j] - max) / sum;
              const at = ((a + j - s) * L + li) * H + h;
              targets[at] = Math.max(targets[at], p);
            }
          }
        }
      }
    });
  }
  return targets;
}

Deno.test("KVzip targets equal spec §2.1 computed by hand, for any forward chunking", async () => {
  for (const arch of ["qwen3", "gemma3"] as const) {
    await withTinyModel({ arch, seed: 3, overrides: LONG }, async (dir) => {
      const model = await Model.load(dir, { threads: 1 });
      const prompt = kvzipPrompt(model.tokenizer());
      const context = Int32Array.from(
        model.tokenizer().encode(generatedText(1, 40), { addSpecialTokens: false }),
      );
      assert(context.length > 60, `context of ${context.length} tokens`);
      const want = await handTargets(model, prompt, context, 25);
      for (const forwardChunk of [512, 9]) {
        const got = await kvzipSample(model, { prompt, context }, {
          reconstructionChunk: 25,
          forwardChunk,
        });
        assertClose(got, want, 2e-5, 1e-7);
      }
      assert(want.some((v) => v > 0.05) && want.every((v) => v >= 0 && v <= 1));
      if (arch === "gemma3") assertEquals(want.length, context.length * 1 * 2); // one global layer
    });
  }
});

gpuTest(
  "KVzip targets and hidden states on the WebGPU backend equal the CPU backend's",
  async (gpu) => {
    await withTinyModel({ arch: "qwen3", seed: 4, overrides: LONG }, async (dir) => {
      const cpu = await Model.load(dir, { threads: 1 });
      const webgpu = await Model.load(dir, { backend: "webgpu", gpu: { context: gpu } });
      try {
        const prompt = kvzipPrompt(cpu.tokenizer());
        const context = Int32Array.from(
          cpu.tokenizer().encode(generatedText(2, 40), { addSpecialTokens: false }),
        );
        const run = async (model: Model<KvStore>) => {
          const hidden: Float32Array[] = [];
          const targets = await kvzipSample(model, { prompt, context }, {
            reconstructionChunk: 25,
            onHidden: (_first, rows) => void hidden.push(rows.slice()),
          });
          return { targets, hidden };
        };
        const want = await run(cpu);
        const got = await run(webgpu);
        // Probabilities to 1e-5 absolute; hidden states to 1e-3 of their largest magnitude.
        assertClose(got.targets, want.targets, 1e-3, 1e-2);
        assertEquals(got.hidden.length, want.hidden.length, "hidden-state batches");
        want.hidden.forEach((rows, i) => {
          const scale = rows.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
          assertClose(got.hidden[i], rows, 1e-3, scale);
        });
        assert(want.targets.some((v) => v > 0.05), "targets carry signal");
      } finally {
        webgpu.dispose();
      }
    });
  },
);

Deno.test("the prompt follows the chat template: system + user header + instruction, A = assistant opener", async () => {
  await withTinyModel({ arch: "qwen3", seed: 1 }, async (dir) => {
    const tokenizer = (await Model.load(dir, { threads: 1 })).tokenizer();
    const prompt = kvzipPrompt(tokenizer);
    const text = (ids: Int32Array) => tokenizer.decode(Array.from(ids));
    assertEquals(
      text(prompt.prefix),
      "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n" +
        "Given the context, answer to the following question or request without explanation.\n\n",
    );
    assertEquals(text(prompt.assistant), "<|im_end|>\n<|im_start|>assistant\n");
    assertEquals(text(prompt.repeatFirst), "\n\nRepeat the previous context exactly.");
    assert(text(prompt.repeatNext).endsWith("starting with "));
  });
});

Deno.test("extracted shards hold the prefill's hidden states and the targets; gather reads them back", async () => {
  await withTinyModel({ arch: "qwen3", seed: 5, overrides: LONG }, async (dir) => {
    const model = await Model.load(dir, { threads: 1, attention: referenceAttention });
    const docs = [
      { name: "a.txt", text: generatedText(2, 15) },
      { name: "b.txt", text: generatedText(3, 40) },
    ];
    const out = `${dir}/features`;
    const manifest = await extractFeatures(model, { docs, dir: out }, {
      reconstructionChunk: 20,
      sampleTokens: 100,
      dtype: "F32",
    });
    const count = (text: string) =>
      model.tokenizer().encode(text, { addSpecialTokens: false }).length;
    assert(count(docs[0].text) <= 100 && count(docs[1].text) > 100 && count(docs[1].text) <= 200);
    assertEquals(manifest.shards.map((s) => s.source), ["a.txt#0", "b.txt#0", "b.txt#1"]);

    const prompt = kvzipPrompt(model.tokenizer());
    const ids = Int32Array.from(
      model.tokenizer().encode(docs[1].text, { addSpecialTokens: false }),
    );
    const slice = ids.subarray(100);
    const hidden = new Map<number, Float32Array>();
    const cache = model.createCache();
    const all = new Int32Array(prompt.prefix.length + slice.length);
    all.set(prompt.prefix);
    all.set(slice, prompt.prefix.length);
    await model.forward(all, cache, {
      logits: "none",
      taps: { onLayer: (tap) => void hidden.set(tap.layer, tap.hidden.slice()) },
    });
    const targets = await kvzipSample(model, { prompt, context: slice }, {
      reconstructionChunk: 20,
    });

    const set = await FeatureSet.open(out);
    try {
      const first = manifest.shards[0].tokens + manifest.shards[1].tokens;
      assertEquals(set.tokens, first + slice.length);
      const picks = Int32Array.of(first + 3, 0, first + slice.length - 1);
      const batch = set.gather(picks);
      const D = model.config.hiddenSize;
      const H = model.config.numKvHeads;
      for (const [slot, local] of [[0, 3], [2, slice.length - 1]]) {
        for (let l = 0; l < 3; l++) {
          const row = prompt.prefix.length + local;
          assertClose(
            batch.x[l].subarray(slot * D, (slot + 1) * D),
            hidden.get(l)!.subarray(row * D, (row + 1) * D),
            1e-5,
            1e-5,
          );
          assertClose(
            batch.y[l].subarray(slot * H, (slot + 1) * H),
            targets.subarray((local * 3 + l) * H, (local * 3 + l + 1) * H),
            1e-6,
            1e-9,
          );
        }
      }
    } finally {
      set.close();
    }
  });
});

Deno.test("extraction resumes from finished shards and refuses other settings", async () => {
  await withTinyModel({ arch: "qwen3", seed: 6, overrides: LONG }, async (dir) => {
    const model = await Model.load(dir, { threads: 1 });
    const docs = [{ name: "a.txt", text: generatedText(4, 30) }];
    const out = `${dir}/features`;
    const seen: boolean[] = [];
    const options = {
      reconstructionChunk: 30,
      onSample: (i: { reused: boolean }) => void seen.push(i.reused),
    };
    await extractFeatures(model, { docs, dir: out }, options);
    const more = [...docs, { name: "b.txt", text: generatedText(5, 10) }];
    await extractFeatures(model, { docs: more, dir: out }, options);
    assertEquals(seen, [false, true, false]);
    const set = await FeatureSet.open(out);
    // BF16 by default: every stored hidden value is a bf16 number.
    const x = set.gather(Int32Array.of(1)).x[0];
    set.close();
    assert(x.every((v) => v === roundToBf16(v)));
    await assertRejects(
      () => extractFeatures(model, { docs, dir: out }, { reconstructionChunk: 31 }),
      InputError,
      "extracted with other settings (--chunk, --sample-tokens)",
    );
    // An edited document is extracted anew, though its name and length are the same.
    const edited = [{ name: "a.txt", text: docs[0].text.replace(/[a-z]/, "q") }, more[1]];
    seen.length = 0;
    await extractFeatures(model, { docs: edited, dir: out }, options);
    assertEquals(seen, [false, true]);
    // A model of the same shape with other weights does not reuse these features.
    await withTinyModel({ arch: "qwen3", seed: 7, overrides: LONG }, async (otherDir) => {
      const other = await Model.load(otherDir, { threads: 1 });
      await assertRejects(
        () => extractFeatures(other, { docs, dir: out }, options),
        InputError,
        "extracted with other settings (the model's weights)",
      );
    });
  });
});
