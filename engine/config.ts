/**
 * Normalising Hugging Face `config.json` (plus `generation_config.json`) into a
 * {@linkcode ModelConfig}. Defaults for absent keys follow the transformers 5.x config classes
 * of each family; both the new `rope_parameters` block and the older `rope_theta` +
 * `rope_scaling` spelling are read, with the precedence transformers applies.
 *
 * @module
 */

import { InputError } from "../errors.ts";
import type { Architecture, LayerSpec, ModelConfig, RopeScaling, RopeSpec } from "./types.ts";

/** `model_type` values evictbench accepts, and the architecture each maps to. */
export const SUPPORTED_MODEL_TYPES: Readonly<Record<string, Architecture>> = Object.freeze({
  llama: "llama",
  qwen2: "qwen2",
  qwen3: "qwen3",
  gemma3_text: "gemma3",
  gemma3: "gemma3",
});

/** RoPE types evictbench implements. */
export const SUPPORTED_ROPE_TYPES: readonly string[] = ["default", "linear", "llama3", "yarn"];

/** Options for {@linkcode parseModelConfig}. */
export interface ParseModelConfigOptions {
  /** How messages name config.json (default "config.json"). */
  path?: string;
  /** Parsed generation_config.json, whose eos/bos ids take precedence. */
  generationConfig?: unknown;
  /** How messages name generation_config.json (default "generation_config.json"). */
  generationConfigPath?: string;
  /**
   * dtype of the stored tensors ("F32", "F16", "BF16"); defaults to the config's `dtype` /
   * `torch_dtype` mapped to safetensors spelling, else "F32".
   */
  storedDtype?: string;
}

type Json = Record<string, unknown>;

function describe(value: unknown): string {
  const text = JSON.stringify(value);
  if (text === undefined) return String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function isObject(value: unknown): value is Json {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** Reads typed fields of one JSON object, naming `label: prefix.key` in every error. */
class Fields {
  constructor(readonly obj: Json, readonly label: string, readonly prefix: string) {}

  name(key: string): string {
    return `${this.prefix}${key}`;
  }

  fail(key: string, expected: string): never {
    throw new InputError(
      `${this.label}: ${this.name(key)} must be ${expected}, got ${describe(this.obj[key])}`,
    );
  }

  has(key: string): boolean {
    return this.obj[key] !== undefined && this.obj[key] !== null;
  }

  posInt(key: string, fallback?: number): number {
    const value = this.obj[key];
    if (value === undefined || value === null) {
      if (fallback !== undefined) return fallback;
      throw new InputError(
        `${this.label}: ${this.name(key)} is missing; expected a positive integer`,
      );
    }
    if (typeof value !== "number" || !Number.isSafeInteger(value) || value <= 0) {
      this.fail(key, "a positive integer");
    }
    return value;
  }

  positive(key: string, fallback?: number): number {
    const value = this.obj[key];
    if (value === undefined || value === null) {
      if (fallback !== undefined) return fallback;
      throw new InputError(
        `${this.label}: ${this.name(key)} is missing; expected a positive number`,
      );
    }
    if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) {
      this.fail(key, "a positive number");
    }
    return value;
  }

  optPositive(key: string): number | null {
    return this.has(key) ? this.positive(key) : null;
  }

  bool(key: string, fallback: boolean): boolean {
    const value = this.obj[key];
    if (value === undefined || value === null) return fallback;
    if (typeof value !== "boolean") this.fail(key, "true or false");
    return value;
  }

  string(key: string, fallback: string): string {
    const value = this.obj[key];
    if (value === undefined || value === null) return fallback;
    if (typeof value !== "string") this.fail(key, "a string");
    return value;
  }

  /** null when absent; a non-negative int, or a list of them (as a list). */
  tokenIds(key: string): number[] | null {
    const value = this.obj[key];
    if (value === undefined || value === null) return null;
    const list = Array.isArray(value) ? value : [value];
    if (!list.every((v) => typeof v === "number" && Number.isSafeInteger(v) && v >= 0)) {
      this.fail(key, "a token id or a list of token ids");
    }
    return list as number[];
  }
}

const DTYPE_NAMES: Readonly<Record<string, string>> = {
  float32: "F32",
  float: "F32",
  float16: "F16",
  half: "F16",
  bfloat16: "BF16",
};

/** Per-family defaults transformers 5.x uses for absent keys. */
interface FamilyDefaults {
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  headDim: number | null;
  maxPositionEmbeddings: number;
  tieWordEmbeddings: boolean;
  bosTokenId: number | null;
  eosTokenId: number | null;
  numKvHeads: number | null;
}

const DEFAULTS: Readonly<Record<Architecture, FamilyDefaults>> = {
  llama: {
    vocabSize: 32000,
    hiddenSize: 4096,
    intermediateSize: 11008,
    numLayers: 32,
    numHeads: 32,
    headDim: null,
    maxPositionEmbeddings: 2048,
    tieWordEmbeddings: false,
    bosTokenId: 1,
    eosTokenId: 2,
    numKvHeads: null,
  },
  qwen2: {
    vocabSize: 151936,
    hiddenSize: 4096,
    intermediateSize: 22016,
    numLayers: 32,
    numHeads: 32,
    headDim: null,
    maxPositionEmbeddings: 32768,
    tieWordEmbeddings: false,
    bosTokenId: null,
    eosTokenId: null,
    numKvHeads: 32,
  },
  qwen3: {
    vocabSize: 151936,
    hiddenSize: 4096,
    intermediateSize: 22016,
    numLayers: 32,
    numHeads: 32,
    headDim: 128,
    maxPositionEmbeddings: 32768,
    tieWordEmbeddings: false,
    bosTokenId: null,
    eosTokenId: null,
    numKvHeads: 32,
  },
  gemma3: {
    vocabSize: 262208,
    hiddenSize: 2304,
    intermediateSize: 9216,
    numLayers: 26,
    numHeads: 8,
    headDim: 256,
    maxPositionEmbeddings: 131072,
    tieWordEmbeddings: true,
    bosTokenId: 2,
    eosTokenId: 1,
    numKvHeads: 4,
  },
};

/**
 * Normalise a parsed Hugging Face config.json into a {@linkcode ModelConfig}. Every problem is a
 * one-line {@linkcode InputError} naming the file and field.
 *
 * For `model_type: "gemma3"` (the multimodal wrapper) the nested `text_config` is read; its
 * weights live under a `language_model` prefix, which {@linkcode loadWeights} detects.
 */
export function parseModelConfig(
  json: unknown,
  options: ParseModelConfigOptions = {},
): ModelConfig {
  const label = options.path ?? "config.json";
  if (!isObject(json)) {
    throw new InputError(`${label}: expected a JSON object, got ${describe(json)}`);
  }
  const expected = Object.keys(SUPPORTED_MODEL_TYPES).join(", ");
  const modelType = json.model_type;
  if (modelType === undefined || modelType === null) {
    throw new InputError(`${label}: model_type is missing; expected one of ${expected}`);
  }
  if (typeof modelType !== "string" || !Object.hasOwn(SUPPORTED_MODEL_TYPES, modelType)) {
    throw new InputError(
      `${label}: model_type ${describe(modelType)} is not supported; expected one of ${expected}`,
    );
  }
  const architecture = SUPPORTED_MODEL_TYPES[modelType];
  const top = new Fields(json, label, "");
  let f = top;
  if (modelType === "gemma3") {
    if (!isObject(json.text_config)) {
      throw new InputError(
        `${label}: text_config must be an object for model_type "gemma3", got ${
          describe(json.text_config)
        }`,
      );
    }
    f = new Fields(json.text_config, label, "text_config.");
  }
  const defaults = DEFAULTS[architecture];

  // Absent keys take the transformers class defaults (hub configs such as Gemma3's text_config
  // rely on them).
  const vocabSize = f.posInt("vocab_size", defaults.vocabSize);
  const hiddenSize = f.posInt("hidden_size", defaults.hiddenSize);
  const intermediateSize = f.posInt("intermediate_size", defaults.intermediateSize);
  const numLayers = f.posInt("num_hidden_layers", defaults.numLayers);
  const numHeads = f.posInt("num_attention_heads", defaults.numHeads);
  // Absent: the family's class default; explicit null: one kv head per query head (as HF does).
  const numKvHeads = f.posInt(
    "num_key_value_heads",
    f.obj.num_key_value_heads === null ? numHeads : defaults.numKvHeads ?? numHeads,
  );
  if (numHeads % numKvHeads !== 0) {
    throw new InputError(
      `${label}: ${f.name("num_attention_heads")} (${numHeads}) must be a multiple of ${
        f.name("num_key_value_heads")
      } (${numKvHeads})`,
    );
  }
  let headDim: number;
  if (f.has("head_dim")) {
    headDim = f.posInt("head_dim");
  } else if (defaults.headDim !== null) {
    headDim = defaults.headDim;
  } else {
    if (hiddenSize % numHeads !== 0) {
      throw new InputError(
        `${label}: ${f.name("hidden_size")} (${hiddenSize}) must be a multiple of ${
          f.name("num_attention_heads")
        } (${numHeads}) when head_dim is absent`,
      );
    }
    headDim = hiddenSize / numHeads;
  }
  if (headDim % 2 !== 0) {
    throw new InputError(`${label}: head dim ${headDim} must be even for rotary embeddings`);
  }
  const rmsNormEps = f.positive("rms_norm_eps", 1e-6);
  const maxPositionEmbeddings = f.posInt("max_position_embeddings", defaults.maxPositionEmbeddings);
  const tieWordEmbeddings = modelType === "gemma3"
    ? (top.has("tie_word_embeddings")
      ? top.bool("tie_word_embeddings", true)
      : f.bool("tie_word_embeddings", true))
    : f.bool("tie_word_embeddings", defaults.tieWordEmbeddings);

  if (f.has("partial_rotary_factor") && f.positive("partial_rotary_factor") !== 1) {
    throw new InputError(
      `${label}: ${f.name("partial_rotary_factor")} ${
        describe(f.obj.partial_rotary_factor)
      } is not supported; expected 1 (rotary on the whole head)`,
    );
  }

  let qkvBias = false;
  let oBias = false;
  let mlpBias = false;
  let qkNorm = false;
  let normStyle: ModelConfig["normStyle"] = "standard";
  let sandwichNorms = false;
  let activation: ModelConfig["activation"] = "silu";
  let embeddingScale = 1;
  let attnScale = 1 / Math.sqrt(headDim);
  const attnLogitSoftcap: number | null = null;
  let finalLogitSoftcap: number | null = null;
  let layers: LayerSpec[];

  if (architecture === "gemma3") {
    const act = f.string("hidden_activation", "gelu_pytorch_tanh");
    if (act !== "gelu_pytorch_tanh") {
      throw new InputError(
        `${label}: ${
          f.name("hidden_activation")
        } "${act}" is not supported; expected "gelu_pytorch_tanh"`,
      );
    }
    if (f.bool("use_bidirectional_attention", false)) {
      throw new InputError(
        `${label}: ${
          f.name("use_bidirectional_attention")
        } is true; only causal attention is supported`,
      );
    }
    activation = "gelu_tanh";
    normStyle = "gemma";
    sandwichNorms = true;
    qkNorm = true;
    const bias = f.bool("attention_bias", false);
    qkvBias = bias;
    oBias = bias;
    // HF keeps embed_scale as a tensor; in a float32 load it is sqrt(hidden) rounded to f32.
    embeddingScale = Math.fround(Math.sqrt(hiddenSize));
    attnScale = 1 / Math.sqrt(f.positive("query_pre_attn_scalar", 256));
    // HF's Gemma3 attention (transformers 5.17, our reference) never applies
    // attn_logit_softcapping, so neither do we; the field is still validated.
    f.optPositive("attn_logit_softcapping");
    finalLogitSoftcap = f.optPositive("final_logit_softcapping");
    layers = gemmaLayers(f, { numLayers, maxPositionEmbeddings });
  } else {
    const act = f.string("hidden_act", "silu");
    if (act !== "silu") {
      throw new InputError(
        `${label}: ${f.name("hidden_act")} "${act}" is not supported; expected "silu"`,
      );
    }
    if (architecture === "llama") {
      const bias = f.bool("attention_bias", false);
      qkvBias = bias;
      oBias = bias;
      mlpBias = f.bool("mlp_bias", false);
    } else {
      if (f.bool("use_sliding_window", false)) {
        throw new InputError(
          `${label}: ${
            f.name("use_sliding_window")
          } is true; sliding-window attention is not supported for ${modelType}`,
        );
      }
      checkAllFullAttention(f, numLayers);
      if (architecture === "qwen2") {
        qkvBias = true;
      } else {
        const bias = f.bool("attention_bias", false);
        qkvBias = bias;
        oBias = bias;
        qkNorm = true;
      }
    }
    const rope = flatRope(f, { maxPositionEmbeddings });
    layers = Array.from({ length: numLayers }, () => ({ slidingWindow: null, rope }));
  }

  const gen = options.generationConfig;
  const genLabel = options.generationConfigPath ?? "generation_config.json";
  let genFields: Fields | null = null;
  if (gen !== undefined && gen !== null) {
    if (!isObject(gen)) {
      throw new InputError(`${genLabel}: expected a JSON object, got ${describe(gen)}`);
    }
    genFields = new Fields(gen, genLabel, "");
  }
  const idSources = [genFields, top, ...(f === top ? [] : [f])];
  const firstIds = (key: string): number[] | null => {
    for (const source of idSources) {
      const ids = source?.tokenIds(key) ?? null;
      if (ids !== null) return ids;
    }
    return null;
  };
  const eos = firstIds("eos_token_id") ??
    (defaults.eosTokenId === null || f.obj.eos_token_id === null ? [] : [defaults.eosTokenId]);
  const bosList = firstIds("bos_token_id");
  const bosTokenId = bosList !== null
    ? bosList[0]
    : f.obj.bos_token_id === null
    ? null
    : defaults.bosTokenId;

  return {
    architecture,
    modelType,
    vocabSize,
    hiddenSize,
    intermediateSize,
    numLayers,
    numHeads,
    numKvHeads,
    headDim,
    rmsNormEps,
    maxPositionEmbeddings,
    tieWordEmbeddings,
    qkvBias,
    oBias,
    mlpBias,
    qkNorm,
    normStyle,
    sandwichNorms,
    activation,
    embeddingScale,
    attnScale,
    attnLogitSoftcap,
    finalLogitSoftcap,
    layers,
    bosTokenId,
    eosTokenIds: [...new Set(eos)],
    storedDtype: options.storedDtype ?? configDtype(f, top),
  };
}

function configDtype(f: Fields, top: Fields): string {
  for (const source of [top, f]) {
    for (const key of ["dtype", "torch_dtype"]) {
      const value = source.obj[key];
      if (typeof value === "string" && Object.hasOwn(DTYPE_NAMES, value)) return DTYPE_NAMES[value];
    }
  }
  return "F32";
}

function checkAllFullAttention(f: Fields, numLayers: number): void {
  if (!f.has("layer_types")) return;
  const types = f.obj.layer_types;
  if (!Array.isArray(types) || types.length !== numLayers) {
    f.fail("layer_types", `a list of ${numLayers} layer types`);
  }
  const bad = types.findIndex((t) => t !== "full_attention");
  if (bad >= 0) {
    throw new InputError(
      `${f.label}: ${f.name("layer_types")}[${bad}] is ${
        describe(types[bad])
      }; only "full_attention" is supported for this model type`,
    );
  }
}

/** Llama/Qwen RoPE: `rope_scaling` (when set) wins over `rope_parameters`, as in transformers. */
function flatRope(f: Fields, ctx: { maxPositionEmbeddings: number }): RopeSpec {
  let field = "rope_parameters";
  let block: unknown = f.obj.rope_parameters;
  const scaling = f.obj.rope_scaling;
  if (isObject(scaling) && Object.keys(scaling).length > 0) {
    field = "rope_scaling";
    block = scaling;
  } else if (scaling !== undefined && scaling !== null && !isObject(scaling)) {
    f.fail("rope_scaling", "an object or null");
  }
  if (block === undefined || block === null) block = {};
  if (!isObject(block)) f.fail(field, "an object or null");
  const topTheta = f.has("rope_theta") ? f.positive("rope_theta") : 10000;
  const topOriginal = f.has("original_max_position_embeddings")
    ? f.posInt("original_max_position_embeddings")
    : null;
  return parseRopeBlock(new Fields(block, f.label, `${f.prefix}${field}.`), {
    theta: topTheta,
    maxPositionEmbeddings: ctx.maxPositionEmbeddings,
    originalOverride: topOriginal,
  });
}

/** Gemma3: layer types, sliding window, and per-layer-type RoPE. */
function gemmaLayers(
  f: Fields,
  ctx: { numLayers: number; maxPositionEmbeddings: number },
): LayerSpec[] {
  const { numLayers } = ctx;
  let types: string[];
  if (f.has("layer_types")) {
    const raw = f.obj.layer_types;
    if (
      !Array.isArray(raw) || raw.length !== numLayers ||
      !raw.every((t) => t === "sliding_attention" || t === "full_attention")
    ) {
      f.fail(
        "layer_types",
        `a list of ${numLayers} entries, each "sliding_attention" or "full_attention"`,
      );
    }
    types = raw as string[];
  } else {
    const pattern = f.posInt("sliding_window_pattern", 6);
    types = Array.from(
      { length: numLayers },
      (_, i) => (i + 1) % pattern !== 0 ? "sliding_attention" : "full_attention",
    );
  }
  const needsWindow = types.includes("sliding_attention");
  const window = needsWindow ? f.posInt("sliding_window", 4096) : null;

  // Build the two rope blocks the way Gemma3TextConfig.convert_rope_params_to_dict does.
  const params = f.obj.rope_parameters;
  let full: Json = { rope_type: "default" };
  let sliding: Json = { rope_type: "default" };
  let fullField = "rope_parameters.full_attention";
  const slidingField = "rope_parameters.sliding_attention";
  if (params !== undefined && params !== null) {
    if (!isObject(params)) f.fail("rope_parameters", "an object keyed by layer type");
    const keys = Object.keys(params);
    if (keys.some((k) => k !== "full_attention" && k !== "sliding_attention")) {
      f.fail(
        "rope_parameters",
        "an object keyed by layer type (full_attention, sliding_attention)",
      );
    }
    for (const key of keys) {
      if (params[key] !== null && !isObject(params[key])) {
        throw new InputError(
          `${f.label}: ${f.prefix}rope_parameters.${key} must be an object, got ${
            describe(params[key])
          }`,
        );
      }
    }
    if (isObject(params.full_attention)) full = { ...params.full_attention };
    if (isObject(params.sliding_attention)) sliding = { ...params.sliding_attention };
  }
  const scaling = f.obj.rope_scaling;
  if (scaling !== undefined && scaling !== null) {
    if (!isObject(scaling)) f.fail("rope_scaling", "an object or null");
    full = { ...full, ...scaling };
    fullField = "rope_scaling";
  }
  const fullTheta = f.has("rope_theta") ? f.positive("rope_theta") : 1_000_000;
  const localTheta = f.has("rope_local_base_freq") ? f.positive("rope_local_base_freq") : 10_000;
  const fullRope = parseRopeBlock(new Fields(full, f.label, `${f.prefix}${fullField}.`), {
    theta: fullTheta,
    maxPositionEmbeddings: ctx.maxPositionEmbeddings,
    originalOverride: null,
  });
  const slidingRope = parseRopeBlock(new Fields(sliding, f.label, `${f.prefix}${slidingField}.`), {
    theta: localTheta,
    maxPositionEmbeddings: ctx.maxPositionEmbeddings,
    originalOverride: null,
  });
  return types.map((t) =>
    t === "sliding_attention"
      ? { slidingWindow: window, rope: slidingRope }
      : { slidingWindow: null, rope: fullRope }
  );
}

/** Parse one RoPE parameter block (rope_type/type, rope_theta, factor, ...). */
function parseRopeBlock(
  b: Fields,
  ctx: { theta: number; maxPositionEmbeddings: number; originalOverride: number | null },
): RopeSpec {
  const typeKey = b.has("rope_type") ? "rope_type" : "type";
  const type = b.string(typeKey, "default");
  if (!SUPPORTED_ROPE_TYPES.includes(type)) {
    throw new InputError(
      `${b.label}: ${b.name(typeKey)} "${type}" is not supported; expected one of ${
        SUPPORTED_ROPE_TYPES.join(", ")
      }`,
    );
  }
  if (b.has("partial_rotary_factor") && b.positive("partial_rotary_factor") !== 1) {
    throw new InputError(
      `${b.label}: ${b.name("partial_rotary_factor")} ${
        describe(b.obj.partial_rotary_factor)
      } is not supported; expected 1`,
    );
  }
  const theta = b.has("rope_theta") ? b.positive("rope_theta") : ctx.theta;
  const original = (): number =>
    ctx.originalOverride ??
      b.posInt("original_max_position_embeddings", ctx.maxPositionEmbeddings);
  let scaling: RopeScaling | null = null;
  if (type === "linear") {
    scaling = { type: "linear", factor: b.positive("factor") };
  } else if (type === "llama3") {
    scaling = {
      type: "llama3",
      factor: b.positive("factor"),
      lowFreqFactor: b.positive("low_freq_factor"),
      highFreqFactor: b.positive("high_freq_factor"),
      originalMaxPositionEmbeddings: original(),
    };
    if (scaling.highFreqFactor === scaling.lowFreqFactor) {
      throw new InputError(
        `${b.label}: ${b.name("high_freq_factor")} must differ from ${b.name("low_freq_factor")}`,
      );
    }
  } else if (type === "yarn") {
    const originalMax = original();
    const factor = b.has("factor") ? b.positive("factor") : ctx.maxPositionEmbeddings / originalMax;
    // transformers uses `beta_fast or 32` / `beta_slow or 1`, so 0 also means the default.
    const betaFast = b.has("beta_fast") ? numberField(b, "beta_fast") || 32 : 32;
    const betaSlow = b.has("beta_slow") ? numberField(b, "beta_slow") || 1 : 1;
    scaling = {
      type: "yarn",
      factor,
      originalMaxPositionEmbeddings: originalMax,
      betaFast,
      betaSlow,
      attentionFactor: b.has("attention_factor") ? b.positive("attention_factor") : null,
      mscale: b.has("mscale") ? numberField(b, "mscale") : null,
      mscaleAllDim: b.has("mscale_all_dim") ? numberField(b, "mscale_all_dim") : null,
      truncate: b.bool("truncate", true),
    };
  }
  return { theta, scaling };
}

function numberField(b: Fields, key: string): number {
  const value = b.obj[key];
  if (typeof value !== "number" || !Number.isFinite(value)) b.fail(key, "a number");
  return value;
}
