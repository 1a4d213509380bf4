/**
 * Deterministic random Hugging Face model directories, for tests (tiny shapes), the benchmark
 * (a Qwen3-0.6B shape) and the demo: config.json in the exact
 * layout transformers 5.x writes for each family, generation_config.json, random weights
 * (single file or sharded), a small byte-level BPE tokenizer.json and tokenizer_config.json
 * with a ChatML chat template.
 *
 * @module
 */

import { parseModelConfig } from "./config.ts";
import {
  f32ToBf16,
  f32ToF16,
  joinPath,
  type TensorToWrite,
  writeSafetensors,
} from "./safetensors.ts";
import type { ModelConfig } from "./types.ts";
import { requiredTensors } from "./weights.ts";
import { seededNormal } from "../kernels/random.ts";

/** Families the generator can write. */
export type TinyArch = "llama" | "qwen2" | "qwen3" | "gemma3";

/** Options for {@linkcode makeRandomModel}. */
export interface RandomModelOptions {
  arch: TinyArch;
  /** PRNG seed; the same seed gives byte-identical files. */
  seed: number;
  /** Stored dtype of the weights (default "F32"). */
  dtype?: "F32" | "F16" | "BF16";
  /** Write 3 shards plus model.safetensors.index.json instead of model.safetensors. */
  sharded?: boolean;
  /**
   * Keys merged into the RoPE block (`rope_parameters`, or its `full_attention` entry for
   * Gemma3), e.g. `{ rope_type: "yarn", factor: 4, original_max_position_embeddings: 64 }`.
   */
  ropeScaling?: Record<string, unknown>;
  /** Top-level config.json keys to set; a value of `undefined` removes the key. */
  overrides?: Record<string, unknown>;
  /**
   * Keep a model already written to `dir` by the same options (checked through the options
   * recorded in `random_model.json`) instead of writing it again.
   */
  reuse?: boolean;
}

/** What {@linkcode makeRandomModel} did. */
export interface RandomModelResult {
  /** Parameters in the weights (tied embeddings counted once). */
  parameters: number;
  /** True when an identical model already in `dir` was kept. */
  reused: boolean;
}

/**
 * The shape of Qwen3-0.6B (config.json keys) with a 32k vocabulary: the benchmark model.
 */
export const QWEN3_0_6B_SHAPE: Readonly<Record<string, unknown>> = Object.freeze({
  hidden_size: 1024,
  intermediate_size: 3072,
  num_hidden_layers: 28,
  num_attention_heads: 16,
  num_key_value_heads: 8,
  head_dim: 128,
  vocab_size: 32000,
  max_position_embeddings: 40960,
  tie_word_embeddings: true,
});

/** The transformers version whose config layout the generator copies. */
export const TINY_TRANSFORMERS_VERSION = "5.17.0";

/** Merges of the tiny tokenizer, applied in this order (ids 256.. in this order). */
const MERGES: readonly [string, string][] = [
  ["Ġ", "t"],
  ["h", "e"],
  ["Ġt", "he"],
  ["i", "n"],
  ["Ġ", "a"],
  ["e", "r"],
  ["o", "n"],
  ["r", "e"],
  ["Ġ", "s"],
  ["a", "n"],
  ["Ġ", "w"],
  ["o", "u"],
  ["i", "s"],
  ["e", "n"],
  ["Ġ", "c"],
  ["l", "l"],
  ["Ġ", "h"],
  ["o", "r"],
  ["in", "g"],
  ["Ġ", "o"],
  ["e", "s"],
  ["a", "t"],
  ["Ġ", "m"],
  ["Ġ", "b"],
  ["Ġ", "i"],
  ["Ġ", "f"],
  ["e", "d"],
  ["Ġ", "p"],
  ["Ġt", "o"],
  ["l", "e"],
];

/** Special tokens of the tiny tokenizer and their ids (right after the merges). */
export const TINY_SPECIAL_TOKENS: Readonly<Record<string, number>> = Object.freeze({
  "<|endoftext|>": 256 + MERGES.length,
  "<|im_start|>": 257 + MERGES.length,
  "<|im_end|>": 258 + MERGES.length,
});

/** Number of ids the tiny tokenizer uses (bytes + merges + special tokens). */
export const TINY_TOKENIZER_SIZE = 259 + MERGES.length;

const ENDOFTEXT = TINY_SPECIAL_TOKENS["<|endoftext|>"];
const IM_END = TINY_SPECIAL_TOKENS["<|im_end|>"];

/** One byte of the byte-level alphabet and the character that stands for it. */
export interface ByteLevelEntry {
  byte: number;
  char: string;
}

/**
 * The GPT-2 byte ↔ printable-character table: printable Latin-1 bytes map to themselves, the
 * rest to code points from 256 up. Returned in GPT-2 vocabulary order (id i ↔ entry i).
 */
export function byteLevelAlphabet(): ByteLevelEntry[] {
  const printable: number[] = [];
  const ranges: [number, number][] = [[0x21, 0x7e], [0xa1, 0xac], [0xae, 0xff]];
  for (const [lo, hi] of ranges) for (let b = lo; b <= hi; b++) printable.push(b);
  const table = printable.map((b) => ({ byte: b, char: String.fromCodePoint(b) }));
  const seen = new Set(printable);
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    if (!seen.has(b)) table.push({ byte: b, char: String.fromCodePoint(256 + extra++) });
  }
  return table;
}

/** The tiny tokenizer.json; Llama and Gemma3 prepend `<|endoftext|>` as BOS when adding special tokens. */
export function tinyTokenizerJson(arch: TinyArch): Record<string, unknown> {
  const vocab: Record<string, number> = {};
  byteLevelAlphabet().forEach(({ char }, id) => (vocab[char] = id));
  MERGES.forEach(([a, b], i) => (vocab[a + b] = 256 + i));
  const added = Object.entries(TINY_SPECIAL_TOKENS).map(([content, id]) => ({
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  }));
  const addsBos = arch === "llama" || arch === "gemma3";
  const postProcessor = addsBos
    ? {
      type: "TemplateProcessing",
      single: [
        { SpecialToken: { id: "<|endoftext|>", type_id: 0 } },
        { Sequence: { id: "A", type_id: 0 } },
      ],
      pair: [
        { SpecialToken: { id: "<|endoftext|>", type_id: 0 } },
        { Sequence: { id: "A", type_id: 0 } },
        { SpecialToken: { id: "<|endoftext|>", type_id: 1 } },
        { Sequence: { id: "B", type_id: 1 } },
      ],
      special_tokens: {
        "<|endoftext|>": { id: "<|endoftext|>", ids: [ENDOFTEXT], tokens: ["<|endoftext|>"] },
      },
    }
    : { type: "ByteLevel", add_prefix_space: false, trim_offsets: false, use_regex: false };
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: {
      type: "ByteLevel",
      add_prefix_space: false,
      trim_offsets: true,
      use_regex: true,
    },
    post_processor: postProcessor,
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: MERGES.map(([a, b]) => [a, b]),
    },
  };
}

/** The ChatML chat template; Llama and Gemma3 start it with the BOS token. */
export function tinyChatTemplate(arch: TinyArch): string {
  const bos = arch === "llama" || arch === "gemma3" ? "{{- bos_token }}\n" : "";
  return bos +
    "{%- for message in messages %}\n" +
    "    {{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}\n" +
    "{%- endfor %}\n" +
    "{%- if add_generation_prompt %}\n" +
    "    {{- '<|im_start|>assistant\\n' }}\n" +
    "{%- endif %}\n";
}

/** The tiny tokenizer_config.json. */
export function tinyTokenizerConfig(arch: TinyArch): Record<string, unknown> {
  const addsBos = arch === "llama" || arch === "gemma3";
  const decoder: Record<string, unknown> = {};
  for (const [content, id] of Object.entries(TINY_SPECIAL_TOKENS)) {
    decoder[String(id)] = {
      content,
      lstrip: false,
      normalized: false,
      rstrip: false,
      single_word: false,
      special: true,
    };
  }
  return {
    add_prefix_space: false,
    added_tokens_decoder: decoder,
    bos_token: addsBos ? "<|endoftext|>" : null,
    chat_template: tinyChatTemplate(arch),
    clean_up_tokenization_spaces: false,
    eos_token: "<|im_end|>",
    extra_special_tokens: {},
    model_max_length: 512,
    pad_token: "<|endoftext|>",
    tokenizer_class: "PreTrainedTokenizerFast",
    unk_token: null,
  };
}

const TORCH_DTYPES = { F32: "float32", F16: "float16", BF16: "bfloat16" } as const;

/** Options for {@linkcode tinyConfigJson}. */
export interface TinyConfigOptions {
  /** Written as the config's `dtype` (default "F32" → "float32"). */
  dtype?: "F32" | "F16" | "BF16";
  /** Merged into the RoPE block, as in {@linkcode RandomModelOptions.ropeScaling}. */
  ropeScaling?: Record<string, unknown>;
}

/** config.json of the default tiny model of `arch`, as transformers 5.x writes it. */
export function tinyConfigJson(
  arch: TinyArch,
  options: TinyConfigOptions = {},
): Record<string, unknown> {
  const dtype = TORCH_DTYPES[options.dtype ?? "F32"];
  const common = {
    attention_dropout: 0.0,
    dtype,
    hidden_size: 40,
    initializer_range: 0.02,
    max_position_embeddings: 512,
    rms_norm_eps: 1e-6,
    transformers_version: TINY_TRANSFORMERS_VERSION,
    use_cache: true,
    vocab_size: 301,
  };
  const flatRope = { rope_theta: 10000.0, rope_type: "default", ...(options.ropeScaling ?? {}) };
  switch (arch) {
    case "llama":
      return {
        ...common,
        architectures: ["LlamaForCausalLM"],
        attention_bias: false,
        bos_token_id: ENDOFTEXT,
        eos_token_id: ENDOFTEXT,
        head_dim: 8,
        hidden_act: "silu",
        intermediate_size: 52,
        mlp_bias: false,
        model_type: "llama",
        num_attention_heads: 5,
        num_hidden_layers: 3,
        num_key_value_heads: 1,
        pad_token_id: null,
        pretraining_tp: 1,
        rope_parameters: flatRope,
        tie_word_embeddings: false,
      };
    case "qwen2":
    case "qwen3": {
      const layers = 3;
      const qwen: Record<string, unknown> = {
        ...common,
        architectures: [arch === "qwen2" ? "Qwen2ForCausalLM" : "Qwen3ForCausalLM"],
        bos_token_id: null,
        eos_token_id: ENDOFTEXT,
        hidden_act: "silu",
        intermediate_size: arch === "qwen2" ? 52 : 44,
        layer_types: Array.from({ length: layers }, () => "full_attention"),
        max_window_layers: 28,
        model_type: arch,
        num_attention_heads: arch === "qwen2" ? 4 : 6,
        num_hidden_layers: layers,
        num_key_value_heads: 2,
        pad_token_id: null,
        rope_parameters: { ...flatRope, rope_theta: 1000000.0 },
        sliding_window: null,
        tie_word_embeddings: arch === "qwen3",
        use_sliding_window: false,
      };
      if (arch === "qwen3") {
        qwen.attention_bias = false;
        qwen.head_dim = 12;
      }
      return qwen;
    }
    case "gemma3": {
      const pattern = 3;
      const layers = 5;
      return {
        ...common,
        _sliding_window_pattern: pattern,
        architectures: ["Gemma3ForCausalLM"],
        attention_bias: false,
        attn_logit_softcapping: null,
        bos_token_id: ENDOFTEXT,
        eos_token_id: ENDOFTEXT,
        final_logit_softcapping: null,
        head_dim: 12,
        hidden_activation: "gelu_pytorch_tanh",
        intermediate_size: 52,
        layer_types: Array.from(
          { length: layers },
          (_, i) => (i + 1) % pattern !== 0 ? "sliding_attention" : "full_attention",
        ),
        model_type: "gemma3_text",
        num_attention_heads: 4,
        num_hidden_layers: layers,
        num_key_value_heads: 2,
        pad_token_id: ENDOFTEXT,
        query_pre_attn_scalar: 20,
        rope_parameters: {
          full_attention: {
            rope_theta: 1000000.0,
            rope_type: "default",
            ...(options.ropeScaling ?? {}),
          },
          sliding_attention: { rope_theta: 10000.0, rope_type: "default" },
        },
        sliding_window: 6,
        sliding_window_pattern: pattern,
        tie_word_embeddings: true,
        use_bidirectional_attention: false,
      };
    }
  }
}

/** JSON with keys sorted at every level and 2-space indent, as transformers writes it. */
export function sortedJson(value: unknown): string {
  const sort = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(sort);
    if (v !== null && typeof v === "object") {
      const out: Record<string, unknown> = {};
      for (const key of Object.keys(v).sort()) out[key] = sort((v as Record<string, unknown>)[key]);
      return out;
    }
    return v;
  };
  return JSON.stringify(sort(value), null, 2) + "\n";
}

/** Random f32 values for tensor `name`, at a scale giving O(1) activations and logits. */
function initTensor(
  name: string,
  { count, normal, config }: { count: number; normal: () => number; config: ModelConfig },
): Float32Array {
  const out = new Float32Array(count);
  const isNorm = /norm\.weight$/.test(name);
  let mean = 0;
  let std = 0.15;
  if (isNorm) {
    mean = config.normStyle === "gemma" ? 0 : 1;
    std = 0.1;
  } else if (name.endsWith(".bias")) {
    std = 0.1;
  } else if (name.endsWith("embed_tokens.weight")) {
    // Tied embeddings double as the output head: keep logits O(1).
    std = config.tieWordEmbeddings ? 2 / Math.sqrt(config.hiddenSize) : 1;
  }
  for (let i = 0; i < count; i++) out[i] = mean + std * normal();
  return out;
}

function encodeTensor(
  values: Float32Array,
  { shape, dtype }: { shape: number[]; dtype: "F32" | "F16" | "BF16" },
): TensorToWrite {
  if (dtype === "F16") return { dtype, shape, data: f32ToF16(values) };
  if (dtype === "BF16") return { dtype, shape, data: f32ToBf16(values) };
  return { dtype, shape, data: values };
}

/**
 * Write a tiny model of `options.arch` into `dir` (created if needed): config.json,
 * generation_config.json, model.safetensors (or 3 shards + index), tokenizer.json and
 * tokenizer_config.json. Weights follow the final config, overrides included, when it parses;
 * otherwise (a deliberately broken config) the default shapes.
 */
export async function makeRandomModel(
  dir: string,
  options: RandomModelOptions,
): Promise<RandomModelResult> {
  const dtype = options.dtype ?? "F32";
  const recipe = sortedJson({ ...options, reuse: undefined });
  const recipePath = joinPath(dir, "random_model.json");
  if (options.reuse) {
    try {
      const previous = JSON.parse(await Deno.readTextFile(recipePath));
      if (sortedJson(previous.options) === recipe) {
        return { parameters: previous.parameters, reused: true };
      }
    } catch {
      // Nothing reusable: write it.
    }
  }
  const base = tinyConfigJson(options.arch, { dtype, ropeScaling: options.ropeScaling });
  const json: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(options.overrides ?? {})) {
    if (value === undefined) delete json[key];
    else json[key] = value;
  }
  // A new depth without explicit layer types repeats the family's pattern over the new depth.
  const overrides = options.overrides ?? {};
  if (
    "num_hidden_layers" in overrides && !("layer_types" in overrides) &&
    Array.isArray(base.layer_types)
  ) {
    const pattern = base.layer_types as string[];
    json.layer_types = Array.from(
      { length: Number(overrides.num_hidden_layers) },
      (_, i) => pattern[i % pattern.length],
    );
  }
  let config: ModelConfig;
  try {
    config = parseModelConfig(json);
  } catch {
    // A deliberately broken config (for error tests): weights in the default shapes.
    config = parseModelConfig(tinyConfigJson(options.arch, { dtype }));
  }
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(joinPath(dir, "config.json"), sortedJson(json));
  const generation: Record<string, unknown> = {
    bos_token_id: json.bos_token_id ?? null,
    eos_token_id: [IM_END, ENDOFTEXT],
    pad_token_id: ENDOFTEXT,
    transformers_version: TINY_TRANSFORMERS_VERSION,
  };
  if (generation.bos_token_id === null) delete generation.bos_token_id;
  await Deno.writeTextFile(joinPath(dir, "generation_config.json"), sortedJson(generation));
  await Deno.writeTextFile(
    joinPath(dir, "tokenizer.json"),
    JSON.stringify(tinyTokenizerJson(options.arch), null, 2) + "\n",
  );
  await Deno.writeTextFile(
    joinPath(dir, "tokenizer_config.json"),
    sortedJson(tinyTokenizerConfig(options.arch)),
  );

  await Deno.remove(recipePath).catch(() => {});
  const normal = seededNormal(options.seed);
  const tensors: Record<string, TensorToWrite> = {};
  const required = requiredTensors(config).sort((a, b) => (a.name < b.name ? -1 : 1));
  for (const { name, shape } of required) {
    const count = shape.reduce((a, b) => a * b, 1);
    tensors[name] = encodeTensor(initTensor(name, { count, normal, config }), { shape, dtype });
  }
  const parameters = required.reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1), 0);
  const metadata = { format: "pt" };
  if (!options.sharded) {
    await writeSafetensors(joinPath(dir, "model.safetensors"), tensors, { metadata });
  } else {
    await writeShards(dir, tensors, metadata);
  }
  // Written last, so a half-written model is never taken for a complete one.
  await Deno.writeTextFile(recipePath, sortedJson({ options: JSON.parse(recipe), parameters }));
  return { parameters, reused: false };
}

async function writeShards(
  dir: string,
  tensors: Record<string, TensorToWrite>,
  metadata: Record<string, string>,
): Promise<void> {
  const names = Object.keys(tensors).sort();
  const shardCount = 3;
  const weightMap: Record<string, string> = {};
  let totalSize = 0;
  let totalParameters = 0;
  for (let s = 0; s < shardCount; s++) {
    const file = `model-0000${s + 1}-of-0000${shardCount}.safetensors`;
    const part: Record<string, TensorToWrite> = {};
    names.filter((_, i) => i % shardCount === s).forEach((name) => {
      part[name] = tensors[name];
      weightMap[name] = file;
      totalSize += tensors[name].data.byteLength;
      totalParameters += tensors[name].shape.reduce((a, b) => a * b, 1);
    });
    await writeSafetensors(joinPath(dir, file), part, { metadata });
  }
  await Deno.writeTextFile(
    joinPath(dir, "model.safetensors.index.json"),
    sortedJson({
      metadata: { total_parameters: totalParameters, total_size: totalSize },
      weight_map: weightMap,
    }),
  );
}
