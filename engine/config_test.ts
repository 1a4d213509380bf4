import { assert, assertAlmostEquals, assertEquals, assertThrows } from "../tests/assert.ts";
import { InputError } from "../errors.ts";
import { tinyConfigJson } from "./random_model.ts";
import { parseModelConfig } from "./config.ts";
import type { ModelConfig } from "./types.ts";

function parse(json: Record<string, unknown>, generationConfig?: unknown): ModelConfig {
  return parseModelConfig(json, { path: "config.json", generationConfig });
}

function expectError(json: unknown, includes: string[]): string {
  const error = assertThrows(() => parseModelConfig(json, { path: "config.json" }), InputError);
  assert(!error.message.includes("\n"), `one line: ${error.message}`);
  assert(error.message.startsWith("config.json: "), `names the file: ${error.message}`);
  for (const part of includes) {
    assert(error.message.includes(part), `"${part}" in ${error.message}`);
  }
  return error.message;
}

Deno.test("llama config: shapes, biases, rope, eos/bos", () => {
  const c = parse(tinyConfigJson("llama"));
  assertEquals(c.architecture, "llama");
  assertEquals(c.modelType, "llama");
  assertEquals(
    [c.vocabSize, c.hiddenSize, c.intermediateSize, c.numLayers, c.numHeads, c.numKvHeads],
    [301, 40, 52, 3, 5, 1],
  );
  assertEquals(c.headDim, 8);
  assertEquals([c.qkvBias, c.oBias, c.mlpBias, c.qkNorm, c.sandwichNorms], [
    false,
    false,
    false,
    false,
    false,
  ]);
  assertEquals(c.normStyle, "standard");
  assertEquals(c.activation, "silu");
  assertEquals(c.embeddingScale, 1);
  assertAlmostEquals(c.attnScale, 1 / Math.sqrt(8), 1e-15);
  assertEquals(c.layers.length, 3);
  assertEquals(c.layers[0], { slidingWindow: null, rope: { theta: 10000, scaling: null } });
  assertEquals(c.tieWordEmbeddings, false);
  assertEquals(c.storedDtype, "F32");
  assertEquals(c.attnLogitSoftcap, null);
  assertEquals(c.finalLogitSoftcap, null);

  const biased = parse({ ...tinyConfigJson("llama"), attention_bias: true, mlp_bias: true });
  assertEquals([biased.qkvBias, biased.oBias, biased.mlpBias], [true, true, true]);
});

Deno.test("llama: head_dim defaults to hidden/heads; HF defaults for absent keys", () => {
  const json = tinyConfigJson("llama");
  delete json.head_dim;
  delete json.num_key_value_heads;
  delete json.max_position_embeddings;
  delete json.rms_norm_eps;
  delete json.tie_word_embeddings;
  delete json.bos_token_id;
  delete json.eos_token_id;
  const c = parse(json);
  assertEquals(c.headDim, 8);
  assertEquals(c.numKvHeads, 5);
  assertEquals(c.maxPositionEmbeddings, 2048);
  assertEquals(c.rmsNormEps, 1e-6);
  assertEquals(c.tieWordEmbeddings, false);
  assertEquals(c.bosTokenId, 1);
  assertEquals(c.eosTokenIds, [2]);
});

Deno.test("qwen2: q/k/v bias but no o bias; sliding window rejected", () => {
  const c = parse(tinyConfigJson("qwen2"));
  assertEquals([c.qkvBias, c.oBias, c.qkNorm], [true, false, false]);
  assertEquals(c.headDim, 10);
  assertEquals(c.layers[2].rope.theta, 1e6);
  assertEquals(c.bosTokenId, null);
  expectError({ ...tinyConfigJson("qwen2"), use_sliding_window: true, sliding_window: 16 }, [
    "use_sliding_window is true",
    "not supported for qwen2",
  ]);
  expectError(
    { ...tinyConfigJson("qwen2"), layer_types: ["full_attention", "sliding_attention", "x"] },
    ['layer_types[1] is "sliding_attention"'],
  );
});

Deno.test("qwen3: explicit head_dim, qk norm, attention_bias on all four projections", () => {
  const c = parse(tinyConfigJson("qwen3"));
  assertEquals(c.headDim, 12);
  assertEquals(c.numHeads * c.headDim, 72);
  assertEquals([c.qkNorm, c.qkvBias, c.oBias], [true, false, false]);
  assertAlmostEquals(c.attnScale, 1 / Math.sqrt(12), 1e-15);
  const b = parse({ ...tinyConfigJson("qwen3"), attention_bias: true });
  assertEquals([b.qkvBias, b.oBias], [true, true]);
  // transformers' Qwen3 default head_dim is 128, not hidden/heads.
  const json = tinyConfigJson("qwen3");
  delete json.head_dim;
  assertEquals(parse(json).headDim, 128);
  expectError({ ...tinyConfigJson("qwen3"), use_sliding_window: true }, ["use_sliding_window"]);
});

Deno.test("gemma3_text: norms, activation, scales, layer types, per-type RoPE", () => {
  const c = parse(tinyConfigJson("gemma3"));
  assertEquals(c.architecture, "gemma3");
  assertEquals(c.modelType, "gemma3_text");
  assertEquals([c.normStyle, c.sandwichNorms, c.qkNorm, c.activation], [
    "gemma",
    true,
    true,
    "gelu_tanh",
  ]);
  // HF's float32 load: sqrt(hidden) rounded to f32 (not the f64 value).
  assertEquals(c.embeddingScale, Math.fround(Math.sqrt(40)));
  assert(c.embeddingScale !== Math.sqrt(40));
  assertAlmostEquals(c.attnScale, 20 ** -0.5, 1e-15);
  assertEquals(c.tieWordEmbeddings, true);
  assertEquals(c.layers.map((l) => l.slidingWindow), [6, 6, null, 6, 6]);
  assertEquals(c.layers[0].rope, { theta: 10000, scaling: null });
  assertEquals(c.layers[2].rope, { theta: 1e6, scaling: null });
  assertEquals([c.attnLogitSoftcap, c.finalLogitSoftcap], [null, null]);

  const capped = parse({
    ...tinyConfigJson("gemma3"),
    attn_logit_softcapping: 50,
    final_logit_softcapping: 30,
  });
  // HF's Gemma3 attention ignores attn_logit_softcapping; the final softcap applies.
  assertEquals([capped.attnLogitSoftcap, capped.finalLogitSoftcap], [null, 30]);
});

Deno.test("gemma3: legacy layout (rope_theta, rope_local_base_freq, rope_scaling, pattern)", () => {
  const json = tinyConfigJson("gemma3");
  delete json.rope_parameters;
  delete json.layer_types;
  delete json._sliding_window_pattern;
  const legacy = {
    ...json,
    num_hidden_layers: 7,
    sliding_window_pattern: 3,
    rope_theta: 500000.0,
    rope_local_base_freq: 2000.0,
    rope_scaling: { rope_type: "linear", factor: 8.0 },
  };
  const c = parse(legacy);
  assertEquals(c.layers.map((l) => l.slidingWindow === null ? "F" : "S").join(""), "SSFSSFS");
  assertEquals(c.layers[0].rope, { theta: 2000, scaling: null });
  assertEquals(c.layers[2].rope, { theta: 500000, scaling: { type: "linear", factor: 8 } });
  // No pattern at all: transformers' default of 6.
  const { sliding_window_pattern: _, ...noPattern } = legacy;
  assertEquals(
    parse(noPattern).layers.map((l) => l.slidingWindow === null ? "F" : "S").join(""),
    "SSSSSFS",
  );
  // Defaults: global 1e6, local 1e4.
  const { rope_theta: _a, rope_local_base_freq: _b, rope_scaling: _c, ...bare } = legacy;
  const d = parse(bare);
  assertEquals([d.layers[0].rope.theta, d.layers[2].rope.theta], [10000, 1e6]);
});

Deno.test("gemma3 multimodal: a hub-style sparse text_config takes Gemma3TextConfig defaults", () => {
  // The shape of google/gemma-3-4b-it's config.json: most text keys are left at their defaults.
  const c = parse({
    architectures: ["Gemma3ForConditionalGeneration"],
    model_type: "gemma3",
    eos_token_id: [1, 106],
    text_config: {
      hidden_size: 2560,
      intermediate_size: 10240,
      model_type: "gemma3_text",
      num_hidden_layers: 34,
      rope_scaling: { factor: 8.0, rope_type: "linear" },
      sliding_window: 1024,
    },
    vision_config: { model_type: "siglip_vision_model" },
  });
  assertEquals([c.vocabSize, c.numHeads, c.numKvHeads, c.headDim], [262208, 8, 4, 256]);
  assertEquals(c.layers.filter((l) => l.slidingWindow === null).length, 5);
  assertEquals(c.layers[5].rope, { theta: 1e6, scaling: { type: "linear", factor: 8 } });
  assertEquals(c.layers[0].rope, { theta: 10000, scaling: null });
  assertEquals(c.layers[0].slidingWindow, 1024);
  assertAlmostEquals(c.attnScale, 1 / 16, 1e-15);
  assertEquals([c.bosTokenId, c.eosTokenIds, c.tieWordEmbeddings], [2, [1, 106], true]);
});

Deno.test("gemma3 multimodal: text_config is read; top-level eos wins over it", () => {
  const text = tinyConfigJson("gemma3");
  const json = {
    architectures: ["Gemma3ForConditionalGeneration"],
    model_type: "gemma3",
    eos_token_id: [1, 106],
    text_config: { ...text, model_type: "gemma3_text", eos_token_id: 7 },
    vision_config: { model_type: "siglip_vision_model" },
  };
  const c = parse(json);
  assertEquals(c.architecture, "gemma3");
  assertEquals(c.modelType, "gemma3");
  assertEquals(c.hiddenSize, 40);
  assertEquals(c.eosTokenIds, [1, 106]);
  expectError({ model_type: "gemma3" }, ["text_config must be an object"]);
  expectError({ ...json, text_config: { ...text, hidden_size: "big" } }, [
    'text_config.hidden_size must be a positive integer, got "big"',
  ]);
});

Deno.test("unknown or missing model_type", () => {
  expectError({ model_type: "mistral" }, [
    'model_type "mistral" is not supported; expected one of llama, qwen2, qwen3, gemma3_text',
  ]);
  expectError({ hidden_size: 4 }, ["model_type is missing"]);
  expectError([1, 2], ["expected a JSON object"]);
});

Deno.test("field validation: positive integers, head divisibility, activation", () => {
  expectError({ ...tinyConfigJson("llama"), hidden_size: 0 }, [
    "hidden_size must be a positive integer, got 0",
  ]);
  expectError({ ...tinyConfigJson("llama"), num_hidden_layers: 2.5 }, ["num_hidden_layers"]);
  expectError({ ...tinyConfigJson("llama"), vocab_size: null, num_attention_heads: "5" }, [
    'num_attention_heads must be a positive integer, got "5"',
  ]);
  expectError({ ...tinyConfigJson("llama"), num_key_value_heads: 2 }, [
    "num_attention_heads (5) must be a multiple of num_key_value_heads (2)",
  ]);
  expectError({ ...tinyConfigJson("llama"), head_dim: 7 }, ["head dim 7 must be even"]);
  expectError({ ...tinyConfigJson("llama"), hidden_act: "gelu" }, ['hidden_act "gelu"']);
  expectError({ ...tinyConfigJson("gemma3"), hidden_activation: "relu" }, ["hidden_activation"]);
  expectError({ ...tinyConfigJson("llama"), tie_word_embeddings: "yes" }, [
    "tie_word_embeddings must be true or false",
  ]);
  expectError({ ...tinyConfigJson("gemma3"), use_bidirectional_attention: true }, [
    "use_bidirectional_attention",
  ]);
  expectError({ ...tinyConfigJson("gemma3"), layer_types: ["sliding_attention"] }, [
    "layer_types must be a list of 5 entries",
  ]);
});

Deno.test("rope: unsupported type names the field", () => {
  expectError(
    { ...tinyConfigJson("llama"), rope_parameters: { rope_type: "dynamic", factor: 2 } },
    ['rope_parameters.rope_type "dynamic" is not supported; expected one of default, linear, llama3, yarn'],
  );
  expectError(
    { ...tinyConfigJson("llama"), rope_scaling: { type: "longrope", factor: 2 } },
    ['rope_scaling.type "longrope" is not supported'],
  );
  const g = tinyConfigJson("gemma3");
  expectError(
    { ...g, rope_parameters: { full_attention: { rope_type: "dynamic" }, sliding_attention: {} } },
    ['rope_parameters.full_attention.rope_type "dynamic"'],
  );
  expectError({ ...tinyConfigJson("qwen3"), partial_rotary_factor: 0.5 }, [
    "partial_rotary_factor 0.5 is not supported",
  ]);
});

Deno.test("rope: legacy rope_scaling + rope_theta, and rope_scaling winning over rope_parameters", () => {
  const json = tinyConfigJson("llama");
  delete json.rope_parameters;
  const legacy = parse({
    ...json,
    rope_theta: 500000.0,
    rope_scaling: {
      type: "llama3",
      factor: 8,
      low_freq_factor: 1,
      high_freq_factor: 4,
      original_max_position_embeddings: 64,
    },
  });
  assertEquals(legacy.layers[0].rope, {
    theta: 500000,
    scaling: {
      type: "llama3",
      factor: 8,
      lowFreqFactor: 1,
      highFreqFactor: 4,
      originalMaxPositionEmbeddings: 64,
    },
  });
  const both = parse({
    ...json,
    rope_parameters: { rope_type: "default", rope_theta: 1234 },
    rope_scaling: { rope_type: "linear", factor: 2 },
    rope_theta: 99,
  });
  // rope_scaling replaces rope_parameters; the top-level rope_theta then fills in.
  assertEquals(both.layers[0].rope, { theta: 99, scaling: { type: "linear", factor: 2 } });
  // rope_scaling: null falls back to rope_parameters.
  const nulled = parse({ ...json, rope_parameters: { rope_theta: 1234 }, rope_scaling: null });
  assertEquals(nulled.layers[0].rope, { theta: 1234, scaling: null });
  expectError({ ...json, rope_scaling: { type: "llama3", factor: 8 } }, [
    "rope_scaling.low_freq_factor is missing",
  ]);
  expectError({ ...json, rope_scaling: { type: "linear" } }, ["rope_scaling.factor is missing"]);
});

Deno.test("rope: yarn defaults follow transformers", () => {
  const c = parse({
    ...tinyConfigJson("qwen3"),
    max_position_embeddings: 256,
    rope_parameters: { rope_type: "yarn", factor: 4.0, rope_theta: 10000 },
  });
  assertEquals(c.layers[0].rope.scaling, {
    type: "yarn",
    factor: 4,
    originalMaxPositionEmbeddings: 256,
    betaFast: 32,
    betaSlow: 1,
    attentionFactor: null,
    mscale: null,
    mscaleAllDim: null,
    truncate: true,
  });
  const explicit = parse({
    ...tinyConfigJson("llama"),
    max_position_embeddings: 256,
    // A top-level original_max_position_embeddings overrides the block's (transformers does so).
    original_max_position_embeddings: 16,
    rope_parameters: {
      rope_type: "yarn",
      rope_theta: 100,
      original_max_position_embeddings: 32,
      beta_fast: 4,
      beta_slow: 0.5,
      attention_factor: 1.25,
      mscale: 0.707,
      mscale_all_dim: 1,
      truncate: false,
    },
  });
  assertEquals(explicit.layers[0].rope, {
    theta: 100,
    scaling: {
      type: "yarn",
      // factor absent: max_position_embeddings / original.
      factor: 16,
      originalMaxPositionEmbeddings: 16,
      betaFast: 4,
      betaSlow: 0.5,
      attentionFactor: 1.25,
      mscale: 0.707,
      mscaleAllDim: 1,
      truncate: false,
    },
  });
});

Deno.test("eos/bos: generation_config.json takes precedence; int or list", () => {
  const json = tinyConfigJson("llama");
  assertEquals(parse(json).eosTokenIds, [286]);
  const c = parse(json, { eos_token_id: [288, 286, 288], bos_token_id: 5 });
  assertEquals(c.eosTokenIds, [288, 286]);
  assertEquals(c.bosTokenId, 5);
  assertEquals(parse(json, { eos_token_id: 7 }).eosTokenIds, [7]);
  assertEquals(parse(json, { do_sample: false }).eosTokenIds, [286]);
  assertEquals(parse({ ...json, eos_token_id: null }).eosTokenIds, []);
  const error = assertThrows(
    () => parseModelConfig(json, { generationConfig: { eos_token_id: "x" } }),
    InputError,
  );
  assertEquals(
    error.message,
    'generation_config.json: eos_token_id must be a token id or a list of token ids, got "x"',
  );
});

Deno.test("storedDtype: option, else the config's dtype / torch_dtype", () => {
  assertEquals(parse(tinyConfigJson("llama", { dtype: "BF16" })).storedDtype, "BF16");
  const { dtype: _, ...noDtype } = tinyConfigJson("llama");
  assertEquals(parse({ ...noDtype, torch_dtype: "float16" }).storedDtype, "F16");
  assertEquals(
    parseModelConfig(tinyConfigJson("llama"), { storedDtype: "BF16" }).storedDtype,
    "BF16",
  );
});

Deno.test("HF fixtures: the transformers-5 and legacy layouts normalise identically", async () => {
  const root = new URL("../tests/fixtures/hf/", import.meta.url);
  let seen = 0;
  for await (const entry of Deno.readDir(root)) {
    const dir = new URL(`${entry.name}/`, root);
    let legacyText: string;
    try {
      legacyText = await Deno.readTextFile(new URL("config.legacy.json", dir));
    } catch {
      continue;
    }
    const generation = JSON.parse(await Deno.readTextFile(new URL("generation_config.json", dir)));
    const modern = parseModelConfig(
      JSON.parse(await Deno.readTextFile(new URL("config.json", dir))),
      { generationConfig: generation },
    );
    const legacy = parseModelConfig(JSON.parse(legacyText), { generationConfig: generation });
    assertEquals(legacy, modern, `fixture ${entry.name}`);
    seen++;
  }
  if (seen === 0) console.log("no tests/fixtures/hf/*/config.legacy.json found; nothing compared");
});
