/**
 * evictbench: a benchmark harness for KV-cache eviction in LLM inference.
 *
 * The library surface: load a Hugging Face model directory, run it over a KV store whose
 * ragged per-(layer, KV head) entries can really be evicted, and observe attention internals
 * through taps; run a whole sweep from a config, as `deno task sweep` does, and read its rows
 * and cells back.
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
 * @example A sweep, then its rows and per-cell aggregates
 * ```ts
 * import { aggregate, readRunRows, readSweepConfig, runSweep, validateSweepConfig } from "./mod.ts";
 * const config = validateSweepConfig(await readSweepConfig("sweep.json"), "sweep.json");
 * const summary = await runSweep(config, { progress: false });
 * const cells = aggregate(await readRunRows(summary.dir));
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
export { type KvStore, type QueryLayout } from "./kernels/kv_store.ts";
export { KvStoragePool, type SegmentStorage } from "./kernels/kv_pool.ts";
export type { GpuModelOptions } from "./engine/model_webgpu.ts";
export type { WeightStore } from "./engine/safetensors.ts";
export type {
  ChatMessage,
  ChatTemplateOptions,
  DecodeOptions,
  EncodeOptions,
} from "./engine/tokenizer.ts";
export type { RandomModelResult, TinyArch } from "./engine/random_model.ts";

// Eviction methods: the registry (list / get / describe, as `listMethods` etc. too), the shared
// selector and the phases. Importing methods/mod.ts registers every built-in method.
export {
  describeMethod as describe,
  getMethod as get,
  listMethods as list,
} from "./methods/mod.ts";
export type {
  Budget,
  ChunkedPrefillOptions,
  DecodeDefaults,
  DecodeEvictionOptions,
  EvictionReport,
  EvictOptions,
  GenerateWithEvictionOptions,
  LayerBudgetInfo,
  MethodChoice,
  MethodDescription,
  ParamDescription,
  PrefillEvictionOptions,
  PrefillEvictionResult,
  PromptParts,
  RatioResult,
  RatioSweepOptions,
  ScoreSnapshot,
  SelectBudget,
  Selection,
  SelectOptions,
} from "./methods/mod.ts";
export {
  type AnyMethodDefinition,
  chunkedPrefillWithEviction,
  DecodeEviction,
  describeMethod,
  evictWithScores,
  generateWithEviction,
  getMethod,
  listMethods,
  type MethodContext,
  type MethodDefinition,
  type Phase,
  type PolicySpec,
  prefillAtRatios,
  prefillWithEviction,
  registerMethod,
  type ScoreGrid,
  type Scorer,
  type ScoreRequest,
  type SelectionPolicy,
  selectKeepSets,
  type Signal,
} from "./methods/mod.ts";

// Tasks: suites, adapters, prompts, metrics and loaders of public benchmark files.
export type {
  AdapterEnv,
  AdapterSource,
  AnyTaskAdapter,
  PromptOptions,
  PromptSegment,
  QueryPrompt,
} from "./tasks/mod.ts";
export {
  buildPrompt,
  getTask,
  listTasks,
  type Query,
  registerTask,
  type Sample,
  type SuiteName,
  type TaskAdapter,
} from "./tasks/mod.ts";
export {
  getMetric,
  listMetrics,
  type Metric,
  type MetricContext,
  type MetricSource,
  registerMetric,
} from "./tasks/metrics/mod.ts";
export * as loaders from "./tasks/loaders/mod.ts";

// Sweeps: the config (schema, parser, validation), the runner, the results store and the
// aggregation the reports read; deno task sweep and merge are these functions.
export {
  BUDGET_UNITS,
  type BudgetUnit,
  DEFAULT_KEPT_RATIOS,
  type MethodSpec,
  type Protocol,
  PROTOCOLS,
  readSweepConfig,
  type SweepConfig,
  SweepConfigSchema,
  sweepJsonSchema,
  type TaskSpec,
  validateSweepConfig,
} from "./sweep/config.ts";
export { runSweep, type RunSweepOptions, type Shard, type SweepSummary } from "./sweep/runner.ts";
export {
  BUDGET_KINDS,
  type BudgetKind,
  readRunJson,
  readRunRows,
  type ResultRow,
  ROW_COLUMNS,
  type RowColumn,
  UNBOUNDED_BUDGET,
} from "./sweep/store.ts";
export {
  aggregate,
  type AggregateOptions,
  cellsToCsv,
  type CellSummary,
} from "./sweep/aggregate.ts";
export { mergeRuns } from "./sweep/merge.ts";
