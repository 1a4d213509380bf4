import { assert, assertEquals, assertRejects } from "../tests/assert.ts";
import { InputError } from "../errors.ts";
import { makeRandomModel, type TinyArch } from "./random_model.ts";
import { parseModelConfig } from "./config.ts";
import { openModelDir } from "./model_dir.ts";
import { editCheckpoint } from "../tests/checkpoints.ts";
import { openWeightStore } from "./safetensors.ts";
import { loadWeights, requiredTensors } from "./weights.ts";

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "evictbench_w_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

for (const arch of ["llama", "qwen2", "qwen3", "gemma3"] as TinyArch[]) {
  Deno.test(`loadWeights: tiny ${arch} loads with every shape as the config says`, async () => {
    await withTempDir(async (dir) => {
      await makeRandomModel(dir, { arch, seed: 11 });
      const model = await openModelDir(dir);
      try {
        const c = model.config;
        const progress: [number, number][] = [];
        const w = await loadWeights(model.store, c, {
          onProgress: (done, total) => progress.push([done, total]),
        });
        const total = requiredTensors(c).length;
        assertEquals(progress.length, total);
        assertEquals(progress.at(-1), [total, total]);
        assertEquals(w.embedTokens.length, c.vocabSize * c.hiddenSize);
        assertEquals(w.finalNorm.length, c.hiddenSize);
        assertEquals(w.layers.length, c.numLayers);
        assertEquals(w.lmHead === w.embedTokens, c.tieWordEmbeddings);
        for (const layer of w.layers) {
          assertEquals(
            [layer.q.outFeatures, layer.q.inFeatures],
            [c.numHeads * c.headDim, c.hiddenSize],
          );
          assertEquals(layer.q.weight.length, c.numHeads * c.headDim * c.hiddenSize);
          assertEquals(layer.k.weight.length, c.numKvHeads * c.headDim * c.hiddenSize);
          assertEquals([layer.o.outFeatures, layer.o.inFeatures], [
            c.hiddenSize,
            c.numHeads * c.headDim,
          ]);
          assertEquals([layer.down.outFeatures, layer.down.inFeatures], [
            c.hiddenSize,
            c.intermediateSize,
          ]);
          assertEquals(layer.gate.weight.length, c.intermediateSize * c.hiddenSize);
          assertEquals(layer.q.bias?.length ?? null, c.qkvBias ? c.numHeads * c.headDim : null);
          assertEquals(layer.v.bias?.length ?? null, c.qkvBias ? c.numKvHeads * c.headDim : null);
          assertEquals(layer.o.bias, null);
          assertEquals(layer.qNorm?.length ?? null, c.qkNorm ? c.headDim : null);
          assertEquals(layer.kNorm?.length ?? null, c.qkNorm ? c.headDim : null);
          assertEquals(layer.preFeedforwardNorm !== null, c.sandwichNorms);
          assertEquals(layer.postFeedforwardNorm !== null, c.sandwichNorms);
        }
        // The values are the stored ones.
        const stored = await model.store.readF32("model.layers.1.mlp.up_proj.weight");
        assertEquals(w.layers[1].up.weight, stored);
      } finally {
        model.close();
      }
    });
  });
}

Deno.test("loadWeights: llama attention_bias gives q/k/v/o biases; mlp_bias gives MLP biases", async () => {
  await withTempDir(async (dir) => {
    await makeRandomModel(dir, {
      arch: "llama",
      seed: 3,
      overrides: { attention_bias: true, mlp_bias: true },
    });
    const model = await openModelDir(dir);
    try {
      const w = await loadWeights(model.store, model.config);
      const l = w.layers[0];
      assertEquals([l.q.bias?.length, l.k.bias?.length, l.o.bias?.length], [40, 8, 40]);
      assertEquals([l.gate.bias?.length, l.up.bias?.length, l.down.bias?.length], [52, 52, 40]);
    } finally {
      model.close();
    }
  });
});

Deno.test("loadWeights: a missing tensor names the file, the tensor and the model type", async () => {
  await withTempDir(async (dir) => {
    await makeRandomModel(dir, { arch: "qwen3", seed: 1 });
    await editCheckpoint(dir, (t) => delete t["model.layers.2.mlp.up_proj.weight"]);
    const store = await openWeightStore(dir);
    try {
      const config = parseModelConfig(JSON.parse(await Deno.readTextFile(`${dir}/config.json`)));
      const error = await assertRejects(() => loadWeights(store, config), InputError);
      assertEquals(
        error.message,
        `${dir}/model.safetensors: tensor model.layers.2.mlp.up_proj.weight is missing (needed by qwen3)`,
      );
    } finally {
      store.close();
    }
  });
});

Deno.test("loadWeights: a shape contradicting config.json names both shapes", async () => {
  await withTempDir(async (dir) => {
    await makeRandomModel(dir, { arch: "llama", seed: 1 });
    await editCheckpoint(dir, (t) => {
      t["model.layers.0.self_attn.q_proj.weight"] = {
        dtype: "F32",
        shape: [32, 40],
        data: new Float32Array(32 * 40),
      };
    });
    const model = await openModelDir(dir);
    try {
      const error = await assertRejects(() => loadWeights(model.store, model.config), InputError);
      assertEquals(
        error.message,
        `${dir}/model.safetensors: model.layers.0.self_attn.q_proj.weight has shape [32,40], config.json implies [40,40]`,
      );
    } finally {
      model.close();
    }
  });
});

Deno.test("loadWeights: untied model without lm_head is an error; tied ignores lm_head", async () => {
  await withTempDir(async (dir) => {
    await makeRandomModel(dir, { arch: "llama", seed: 2 });
    await editCheckpoint(dir, (t) => delete t["lm_head.weight"]);
    const model = await openModelDir(dir);
    try {
      await assertRejects(
        () => loadWeights(model.store, model.config),
        InputError,
        "tensor lm_head.weight is missing (needed by llama; tie_word_embeddings is false)",
      );
      const tied = { ...model.config, tieWordEmbeddings: true };
      const w = await loadWeights(model.store, tied);
      assert(w.lmHead === w.embedTokens);
    } finally {
      model.close();
    }
  });
});

Deno.test("loadWeights: a tied model's stored lm_head is used only where it differs, as in HF", async () => {
  await withTempDir(async (dir) => {
    await makeRandomModel(dir, { arch: "llama", seed: 2 });
    const load = async () => {
      const model = await openModelDir(dir);
      try {
        return await loadWeights(model.store, { ...model.config, tieWordEmbeddings: true });
      } finally {
        model.close();
      }
    };
    // The random llama stores an lm_head of its own: it differs, so it projects.
    const differs = await load();
    assert(differs.lmHead !== differs.embedTokens);
    assert(differs.lmHead.some((v, i) => v !== differs.embedTokens[i]));
    // A copy of the embeddings (what tied exports often store): one array.
    await editCheckpoint(dir, (t) => {
      const embed = t["model.embed_tokens.weight"];
      t["lm_head.weight"] = { ...embed, data: (embed.data as Float32Array).slice() };
    });
    const same = await load();
    assert(same.lmHead === same.embedTokens);
  });
});

Deno.test("loadWeights: extra tensors (rotary inv_freq) are ignored", async () => {
  await withTempDir(async (dir) => {
    await makeRandomModel(dir, { arch: "qwen2", seed: 4 });
    await editCheckpoint(dir, (t) => {
      t["model.layers.0.self_attn.rotary_emb.inv_freq"] = {
        dtype: "F32",
        shape: [5],
        data: new Float32Array(5),
      };
    });
    const model = await openModelDir(dir);
    try {
      const w = await loadWeights(model.store, model.config);
      assertEquals(w.layers.length, 3);
    } finally {
      model.close();
    }
  });
});

Deno.test("loadWeights: multimodal Gemma3 names (language_model prefixes) are found", async () => {
  for (
    const [prefix, head] of [
      ["model.language_model.", "lm_head.weight"],
      ["language_model.model.", "language_model.lm_head.weight"],
    ]
  ) {
    await withTempDir(async (dir) => {
      await makeRandomModel(dir, { arch: "gemma3", seed: 5 });
      await editCheckpoint(dir, (t) => {
        for (const name of Object.keys(t)) {
          t[name.replace(/^model\./, prefix)] = t[name];
          delete t[name];
        }
        t["vision_tower.encoder.weight"] = { dtype: "F32", shape: [2], data: new Float32Array(2) };
      });
      const config = {
        ...parseModelConfig(JSON.parse(await Deno.readTextFile(`${dir}/config.json`))),
      };
      const store = await openWeightStore(dir);
      try {
        const w = await loadWeights(store, config);
        assertEquals(w.layers.length, 5);
        assert(w.lmHead === w.embedTokens);
        const untied = await assertRejects(
          () => loadWeights(store, { ...config, tieWordEmbeddings: false }),
          InputError,
        );
        assert(untied.message.includes(`tensor ${head} is missing`), untied.message);
      } finally {
        store.close();
      }
    });
  }
});

Deno.test("loadWeights: sharded BF16 checkpoint loads and widens exactly", async () => {
  await withTempDir(async (dir) => {
    await makeRandomModel(`${dir}/a`, { arch: "gemma3", seed: 9, dtype: "BF16", sharded: true });
    await makeRandomModel(`${dir}/b`, { arch: "gemma3", seed: 9, dtype: "BF16" });
    const a = await openModelDir(`${dir}/a`);
    const b = await openModelDir(`${dir}/b`);
    try {
      assertEquals(a.store.files.length, 3);
      assertEquals(a.config.storedDtype, "BF16");
      const wa = await loadWeights(a.store, a.config);
      const wb = await loadWeights(b.store, b.config);
      assertEquals(wa.layers[4].down.weight, wb.layers[4].down.weight);
      assertEquals(wa.embedTokens, wb.embedTokens);
      // Every value is a bf16 value: the low 16 bits are zero.
      const bits = new Uint32Array(wa.embedTokens.buffer, wa.embedTokens.byteOffset, 64);
      assert(bits.every((x) => (x & 0xffff) === 0));
    } finally {
      a.close();
      b.close();
    }
  });
});

Deno.test("loadWeights: every checkpoint under tests/fixtures/hf (written by transformers) loads", async () => {
  const root = new URL("../tests/fixtures/hf/", import.meta.url).pathname;
  let count = 0;
  try {
    for await (const entry of Deno.readDir(root)) {
      if (!entry.isDirectory) continue;
      const model = await openModelDir(`${root}${entry.name}`);
      try {
        const w = await loadWeights(model.store, model.config);
        assertEquals(w.layers.length, model.config.numLayers, entry.name);
        count++;
      } finally {
        model.close();
      }
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  if (count === 0) console.log("tests/fixtures/hf has no checkpoints; nothing loaded");
});
