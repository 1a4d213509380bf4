/**
 * evictbench: a benchmark harness for KV-cache eviction in LLM inference.
 *
 * The library surface: load a Hugging Face model directory, run it over a KV store whose
 * ragged per-(layer, KV head) entries can really be evicted, and observe attention internals
 * through taps.
 *
 * @example
 * ```ts
 * import { generate, Model } from "./mod.ts";
 * const model = await Model.load("path/to/hf-model");
 * const cache = model.createCache();
 * const ids = Int32Array.from(model.tokenizer().encode("Hello"));
 * const { text } = await generate(model, cache, ids, {
 *   maxNewTokens: 16,
 *   decode: (t) => model.tokenizer().decode(t),
 * });
 * ```
 *
 * @module
 */

export { InputError, isInputError } from "./errors.ts";
export {
  type ForwardOptions,
  type ForwardTaps,
  type LayerTap,
  type LoadOptions,
  Model,
} from "./engine/model.ts";
export {
  argmax,
  generate,
  type GenerateOptions,
  type GenerateResult,
  type StopReason,
} from "./engine/generate.ts";
export { type ModelDir, openModelDir } from "./engine/model_dir.ts";
export { loadTokenizer, TextTokenizer } from "./engine/tokenizer.ts";
export {
  makeRandomModel,
  QWEN3_0_6B_SHAPE,
  type RandomModelOptions,
} from "./engine/random_model.ts";
export { ARCHITECTURES } from "./engine/types.ts";
export type {
  Architecture,
  LayerSpec,
  ModelConfig,
  RopeScaling,
  RopeSpec,
} from "./engine/types.ts";
export {
  type AttendOptions,
  type AttendResult,
  type AttentionExecutor,
  CpuKvStore,
  type GqaReduction,
  type HeadSegment,
  type HeadStats,
  type KvMark,
  type KvStoreShape,
  referenceAttention,
  type StatsRequest,
} from "./kernels/kv_store.ts";
export { OrtAttention } from "./kernels/attention_ort.ts";
