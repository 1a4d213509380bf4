/**
 * The normalised description of a decoder-only model, independent of how each Hugging Face
 * family spells its config.json. Every architecture difference the forward pass needs is a
 * named field here, so the forward reads straight through with small switches.
 *
 * @module
 */

/** The architecture families evictbench runs. */
export type Architecture = "llama" | "qwen2" | "qwen3" | "gemma3";

/** Every registered architecture, in display order. */
export const ARCHITECTURES: readonly Architecture[] = ["llama", "qwen2", "qwen3", "gemma3"];

/** RoPE frequency scaling, as the HF `rope_scaling` / `rope_parameters` block describes it. */
export type RopeScaling =
  | { type: "linear"; factor: number }
  | {
    type: "llama3";
    factor: number;
    lowFreqFactor: number;
    highFreqFactor: number;
    originalMaxPositionEmbeddings: number;
  }
  | {
    type: "yarn";
    factor: number;
    originalMaxPositionEmbeddings: number;
    betaFast: number;
    betaSlow: number;
    /** Explicit attention scaling (`attention_factor`); null derives it from `factor` and mscale. */
    attentionFactor: number | null;
    mscale: number | null;
    mscaleAllDim: number | null;
    /** Round the correction range to whole dims (HF default true). */
    truncate: boolean;
  };

/** Rotary embedding of one layer: base frequency and optional scaling. */
export interface RopeSpec {
  theta: number;
  scaling: RopeScaling | null;
}

/** Per-layer attention layout. */
export interface LayerSpec {
  /** Sliding-window size in tokens for local layers (a key at distance ≥ window is masked); null = global. */
  slidingWindow: number | null;
  rope: RopeSpec;
}

/** The normalised model configuration. */
export interface ModelConfig {
  architecture: Architecture;
  /** `model_type` as written in config.json (e.g. "gemma3_text"). */
  modelType: string;
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  /** Query heads. */
  numHeads: number;
  /** Key/value heads (GQA when fewer than numHeads). */
  numKvHeads: number;
  headDim: number;
  rmsNormEps: number;
  maxPositionEmbeddings: number;
  tieWordEmbeddings: boolean;
  /** q/k/v projections carry a bias (Qwen2; Llama with attention_bias). */
  qkvBias: boolean;
  /** o_proj carries a bias (Llama with attention_bias). */
  oBias: boolean;
  /** gate/up/down carry a bias (Llama with mlp_bias). */
  mlpBias: boolean;
  /** Per-head RMSNorm on q and k before RoPE (Qwen3, Gemma3). */
  qkNorm: boolean;
  /** "gemma" norms multiply by (1 + w) instead of w. */
  normStyle: "standard" | "gemma";
  /** Gemma3: extra post-attention and pre/post-feedforward norms around each block. */
  sandwichNorms: boolean;
  activation: "silu" | "gelu_tanh";
  /** Multiplier on the token embeddings (Gemma3: sqrt(hidden), rounded to the model dtype). */
  embeddingScale: number;
  /** Multiplier on q·k (1/sqrt(headDim), or Gemma3's query_pre_attn_scalar^-0.5). */
  attnScale: number;
  /** tanh soft-capping of attention logits; null = none. */
  attnLogitSoftcap: number | null;
  /** tanh soft-capping of final logits; null = none. */
  finalLogitSoftcap: number | null;
  layers: LayerSpec[];
  bosTokenId: number | null;
  /** End-of-sequence ids: generation_config.json first, then config.json. */
  eosTokenIds: number[];
  /** dtype of the checkpoint tensors as stored ("F32", "F16" or "BF16"). */
  storedDtype: string;
}

/** A linear layer in HF layout: weight [out, in] row-major, optional bias [out]. */
export interface LinearWeights {
  weight: Float32Array;
  bias: Float32Array | null;
  outFeatures: number;
  inFeatures: number;
}

/** Weights of one decoder layer, widened to f32. Norm weights are stored as in the checkpoint. */
export interface LayerWeights {
  inputNorm: Float32Array;
  q: LinearWeights;
  k: LinearWeights;
  v: LinearWeights;
  o: LinearWeights;
  /** [headDim] when config.qkNorm. */
  qNorm: Float32Array | null;
  kNorm: Float32Array | null;
  /** Llama/Qwen: the norm before the MLP (`post_attention_layernorm`). Gemma3: the norm after attention. */
  postAttentionNorm: Float32Array;
  /** Gemma3 only. */
  preFeedforwardNorm: Float32Array | null;
  postFeedforwardNorm: Float32Array | null;
  gate: LinearWeights;
  up: LinearWeights;
  down: LinearWeights;
}

/** All weights of a model, widened to f32. */
export interface ModelWeights {
  /** [vocab, hidden]. */
  embedTokens: Float32Array;
  layers: LayerWeights[];
  finalNorm: Float32Array;
  /** [vocab, hidden]; the same array as embedTokens when embeddings are tied. */
  lmHead: Float32Array;
}
