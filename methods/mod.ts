/**
 * Eviction methods: the registry, the shared selector, the phases and every built-in method.
 *
 * Importing this module registers the built-in methods (one import line each below). A plugin
 * registers itself the same way: `registerMethod(definition)` at the end of its module, and one
 * import line here (or in the plugin user's entry point). See docs/methods.md.
 *
 * @example
 * ```ts
 * import { listMethods, prefillWithEviction } from "./methods/mod.ts";
 * console.log(listMethods().map((m) => m.id));
 * const { report } = await prefillWithEviction(model, { prefix, context }, {
 *   method: "kvzip", keptRatio: 0.3,
 * });
 * ```
 *
 * @module
 */

import "./full.ts";
import "./kvzip.ts";
import "./snapkv.ts";
import "./pyramidkv.ts";
import "./expected_attention.ts";
import "./h2o.ts";
import "./tova.ts";
import "./streamingllm.ts";
import "./rkv.ts";
import "./head.ts";
import "./knorm.ts";
import "./random.ts";
import "./gated.ts";

export {
  describeMethod,
  getMethod,
  levenshtein,
  listMethods,
  type MethodDescription,
  nearMatches,
  type ParamDescription,
  parseMethodParams,
  parseParamArgs,
  registerMethod,
  unregisterMethod,
} from "./registry.ts";
export {
  adjustWindow,
  describeStore,
  evictableLayers,
  type EvictionReport,
  type EvictOptions,
  evictWithScores,
  kthSmallest,
  type SelectBudget,
  type Selection,
  selectKeepSets,
  type SelectOptions,
} from "./select.ts";
export {
  type ChunkedPrefillOptions,
  chunkedPrefillWithEviction,
  DecodeEviction,
  type DecodeEvictionOptions,
  generateWithEviction,
  type GenerateWithEvictionOptions,
  type MethodChoice,
  prefillAtRatios,
  type PrefillEvictionOptions,
  type PrefillEvictionResult,
  prefillWithEviction,
  type PromptParts,
  type RatioResult,
  type RatioSweepOptions,
  scorerTaps,
  type ScoreSnapshot,
  SPEC_DECODE_INTERVAL,
  SPEC_DECODE_SINKS,
  SPEC_PREFILL_CHUNK,
  SPEC_PREFILL_WINDOW,
  SPEC_WINDOW_RATIO,
} from "./phases.ts";
export { alignValues, EntryScores, gridFrom, gridFromLayers } from "./entry_scores.ts";
export {
  expectedAttention as expectedAttentionScores,
  type ExpectedHead,
  keyRedundancy,
  QueryMoments,
  releaseScoringSessions,
  windowAttention,
  type WindowGqa,
  type WindowHead,
} from "./score_ort.ts";
export {
  type AnyMethodDefinition,
  BASELINE_DECODE,
  type Budget,
  type DecodeDefaults,
  type LayerBudgetInfo,
  type MethodContext,
  type MethodDefinition,
  type Phase,
  PHASES,
  type PolicySpec,
  type ScoreGrid,
  type Scorer,
  type ScoreRequest,
  SELECTION_POLICIES,
  type SelectionPolicy,
  type Signal,
  SIGNALS,
} from "./types.ts";
