/**
 * Loading a checkpoint's tensors into {@linkcode ModelWeights}: maps Hugging Face tensor names to
 * fields, checks every shape against the config, widens to f32 and ties embeddings.
 *
 * @module
 */

import { InputError } from "../errors.ts";
import type { WeightStore } from "./safetensors.ts";
import type { LayerWeights, LinearWeights, ModelConfig, ModelWeights } from "./types.ts";

/** Where the decoder's tensors may live, in the order tried (text-only first, then multimodal). */
export const DECODER_PREFIXES: readonly string[] = [
  "model.",
  "model.language_model.",
  "language_model.model.",
];

/** Where the output head may live, matching {@linkcode DECODER_PREFIXES} by position. */
export const LM_HEAD_NAMES: readonly string[] = [
  "lm_head.weight",
  "lm_head.weight",
  "language_model.lm_head.weight",
];

/** Options for {@linkcode loadWeights}. */
export interface LoadWeightsOptions {
  /** Called after each tensor is read with the number read so far and the total. */
  onProgress?: (done: number, total: number) => void;
}

/** One tensor the config requires: its name and expected shape. */
export interface RequiredTensor {
  name: string;
  shape: number[];
}

/** Where a checkpoint keeps its decoder tensors and its output head. */
export interface CheckpointNames {
  /** Prefix of `embed_tokens`, `layers.N...` and `norm` (e.g. "model."). */
  prefix: string;
  /** Full name of the output head tensor (e.g. "lm_head.weight"). */
  lmHead: string;
}

/**
 * The decoder prefix the store uses ("model." for text-only checkpoints, a language_model
 * prefix for multimodal Gemma3), found by looking for the token embedding.
 */
export function detectPrefix(store: WeightStore): CheckpointNames {
  for (let i = 0; i < DECODER_PREFIXES.length; i++) {
    if (store.has(`${DECODER_PREFIXES[i]}embed_tokens.weight`)) {
      return { prefix: DECODER_PREFIXES[i], lmHead: LM_HEAD_NAMES[i] };
    }
  }
  return { prefix: DECODER_PREFIXES[0], lmHead: LM_HEAD_NAMES[0] };
}

/**
 * Every tensor `config` needs from a checkpoint using decoder prefix `prefix`, with the shape
 * config.json implies. The lm_head is listed only when embeddings are untied.
 */
export function requiredTensors(
  config: ModelConfig,
  names: Partial<CheckpointNames> = {},
): RequiredTensor[] {
  const prefix = names.prefix ?? "model.";
  const h = config.hiddenSize;
  const qDim = config.numHeads * config.headDim;
  const kvDim = config.numKvHeads * config.headDim;
  const inter = config.intermediateSize;
  const out: RequiredTensor[] = [{
    name: `${prefix}embed_tokens.weight`,
    shape: [config.vocabSize, h],
  }];
  const linear = (base: string, outF: number, inF: number, bias: boolean): void => {
    out.push({ name: `${base}.weight`, shape: [outF, inF] });
    if (bias) out.push({ name: `${base}.bias`, shape: [outF] });
  };
  for (let i = 0; i < config.numLayers; i++) {
    const l = `${prefix}layers.${i}`;
    out.push({ name: `${l}.input_layernorm.weight`, shape: [h] });
    linear(`${l}.self_attn.q_proj`, qDim, h, config.qkvBias);
    linear(`${l}.self_attn.k_proj`, kvDim, h, config.qkvBias);
    linear(`${l}.self_attn.v_proj`, kvDim, h, config.qkvBias);
    linear(`${l}.self_attn.o_proj`, h, qDim, config.oBias);
    if (config.qkNorm) {
      out.push({ name: `${l}.self_attn.q_norm.weight`, shape: [config.headDim] });
      out.push({ name: `${l}.self_attn.k_norm.weight`, shape: [config.headDim] });
    }
    out.push({ name: `${l}.post_attention_layernorm.weight`, shape: [h] });
    if (config.sandwichNorms) {
      out.push({ name: `${l}.pre_feedforward_layernorm.weight`, shape: [h] });
      out.push({ name: `${l}.post_feedforward_layernorm.weight`, shape: [h] });
    }
    linear(`${l}.mlp.gate_proj`, inter, h, config.mlpBias);
    linear(`${l}.mlp.up_proj`, inter, h, config.mlpBias);
    linear(`${l}.mlp.down_proj`, h, inter, config.mlpBias);
  }
  out.push({ name: `${prefix}norm.weight`, shape: [h] });
  if (!config.tieWordEmbeddings) {
    out.push({ name: names.lmHead ?? "lm_head.weight", shape: [config.vocabSize, h] });
  }
  return out;
}

/**
 * Read every tensor `config` needs from `store`, widened to f32. Missing tensors and shapes that
 * contradict config.json are one-line {@linkcode InputError}s; all names are checked before any
 * data is read. Tensors the config does not use (e.g. `rotary_emb.inv_freq`) are ignored.
 */
export async function loadWeights(
  store: WeightStore,
  config: ModelConfig,
  options: LoadWeightsOptions = {},
): Promise<ModelWeights> {
  const names = detectPrefix(store);
  const required = requiredTensors(config, names);
  for (const tensor of required) {
    if (!store.has(tensor.name)) {
      const why = tensor.name === names.lmHead ? "; tie_word_embeddings is false" : "";
      throw new InputError(
        `${store.label}: tensor ${tensor.name} is missing (needed by ${config.modelType}${why})`,
      );
    }
    const info = store.info(tensor.name)!;
    if (
      info.shape.length !== tensor.shape.length || info.shape.some((d, i) => d !== tensor.shape[i])
    ) {
      throw new InputError(
        `${info.file}: ${tensor.name} has shape [${info.shape.join(",")}], config.json implies [${
          tensor.shape.join(",")
        }]`,
      );
    }
  }
  const tensors = new Map<string, Float32Array>();
  let done = 0;
  for (const tensor of required) {
    tensors.set(
      tensor.name,
      await store.readF32(tensor.name, { expectShape: tensor.shape, what: "config.json implies" }),
    );
    done++;
    options.onProgress?.(done, required.length);
  }
  const get = (name: string): Float32Array => tensors.get(name)!;
  const opt = (name: string): Float32Array | null => tensors.get(name) ?? null;
  const linear = (base: string, outFeatures: number, inFeatures: number): LinearWeights => ({
    weight: get(`${base}.weight`),
    bias: opt(`${base}.bias`),
    outFeatures,
    inFeatures,
  });
  const { prefix } = names;
  const h = config.hiddenSize;
  const qDim = config.numHeads * config.headDim;
  const kvDim = config.numKvHeads * config.headDim;
  const inter = config.intermediateSize;
  const layers: LayerWeights[] = [];
  for (let i = 0; i < config.numLayers; i++) {
    const l = `${prefix}layers.${i}`;
    layers.push({
      inputNorm: get(`${l}.input_layernorm.weight`),
      q: linear(`${l}.self_attn.q_proj`, qDim, h),
      k: linear(`${l}.self_attn.k_proj`, kvDim, h),
      v: linear(`${l}.self_attn.v_proj`, kvDim, h),
      o: linear(`${l}.self_attn.o_proj`, h, qDim),
      qNorm: opt(`${l}.self_attn.q_norm.weight`),
      kNorm: opt(`${l}.self_attn.k_norm.weight`),
      postAttentionNorm: get(`${l}.post_attention_layernorm.weight`),
      preFeedforwardNorm: opt(`${l}.pre_feedforward_layernorm.weight`),
      postFeedforwardNorm: opt(`${l}.post_feedforward_layernorm.weight`),
      gate: linear(`${l}.mlp.gate_proj`, inter, h),
      up: linear(`${l}.mlp.up_proj`, inter, h),
      down: linear(`${l}.mlp.down_proj`, h, inter),
    });
  }
  const embedTokens = get(`${prefix}embed_tokens.weight`);
  return {
    embedTokens,
    layers,
    finalNorm: get(`${prefix}norm.weight`),
    lmHead: config.tieWordEmbeddings
      ? await storedTiedHead(store, names.lmHead, embedTokens, [config.vocabSize, h]) ??
        embedTokens
      : get(names.lmHead),
  };
}

/**
 * A tied model's output head when the checkpoint stores one that differs from the embeddings:
 * HF transformers then does not tie them ("both are present in the checkpoints with different
 * values, so we will NOT tie them") and projects with the stored head, so this does too. Null
 * when there is none, or it equals the embeddings (the usual case: they stay one array).
 */
async function storedTiedHead(
  store: WeightStore,
  name: string,
  embedTokens: Float32Array,
  shape: [number, number],
): Promise<Float32Array | null> {
  const info = store.info(name);
  if (info === undefined || info.shape.length !== 2 || info.shape.some((d, i) => d !== shape[i])) {
    return null;
  }
  const head = await store.readF32(name, { expectShape: shape, what: "the embeddings imply" });
  for (let i = 0; i < head.length; i++) if (head[i] !== embedTokens[i]) return head;
  return null;
}

/**
 * Several linear layers that share their input, stacked into one: their weight rows one after
 * another, and their biases likewise (zeros for a layer without one), so one product computes
 * them all (q/k/v; gate/up).
 */
export function stackLinear(parts: readonly LinearWeights[]): LinearWeights {
  const inFeatures = parts[0].inFeatures;
  const outFeatures = parts.reduce((n, p) => n + p.outFeatures, 0);
  const weight = new Float32Array(outFeatures * inFeatures);
  const bias = parts.some((p) => p.bias !== null) ? new Float32Array(outFeatures) : null;
  let row = 0;
  for (const p of parts) {
    weight.set(p.weight, row * inFeatures);
    if (bias !== null && p.bias !== null) bias.set(p.bias, row);
    row += p.outFeatures;
  }
  return { weight, bias, outFeatures, inFeatures };
}
