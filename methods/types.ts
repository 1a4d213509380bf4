/**
 * The contract between an eviction method and the shared machinery.
 *
 * A method is a {@linkcode MethodDefinition}: an id, a paper, parameters with defaults (a zod
 * object schema), the signals it reads, the phases it acts in, its default selection policy and
 * a factory for a {@linkcode Scorer}. The scorer observes forward passes through typed taps and
 * returns importance scores per (layer, KV head, entry), higher = keep. It never evicts: the
 * shared selector (`select.ts`) turns scores into keep-sets under a budget and protections, and
 * the phases (`phases.ts`) run the forwards, call the scorer and compact the store.
 *
 * Every method, the built-in ones and `gated` (Fast KVzip) alike, registers through
 * `registerMethod` in `registry.ts`; `mod.ts` imports each method module once.
 *
 * @module
 */

import type { z } from "zod";
import type { LayerTap, Model } from "../engine/model.ts";
import type { TextTokenizer } from "../engine/tokenizer.ts";
import type { ModelConfig } from "../engine/types.ts";
import type { KvStore, StatsRequest } from "../kernels/kv_store.ts";

/**
 * What a method reads from the forward pass (declared, so a runner can tell what it costs):
 * - `attention-stats`: statistics fused into attention (column sums, column max, window mean,
 *   last row), requested through {@linkcode Scorer.stats};
 * - `hidden`: the attention-input hidden state of each layer ({@linkcode LayerTap.hidden});
 * - `queries`, `keys`, `values`: post-RoPE queries and keys, and values, of each forward
 *   (taps), or the entries the store holds: `cache.entryNorms(l, "keys")` (a reduction where
 *   the entries live) or `cache.readEntries(...)` (raw keys and values; on the GPU backend a
 *   read-back, so use it only when the method needs them).
 */
export type Signal = "attention-stats" | "hidden" | "queries" | "keys" | "values";

/** Every signal, in display order. */
export const SIGNALS: readonly Signal[] = [
  "attention-stats",
  "hidden",
  "queries",
  "keys",
  "values",
];

/**
 * When eviction happens:
 * - `prefill`: once, after the whole prompt is prefilled (kvpress, KVzip);
 * - `chunked-prefill`: after every prefill chunk, decisions final (spec §3.3);
 * - `decode`: periodically while generating, under an absolute budget (spec §4).
 */
export type Phase = "prefill" | "chunked-prefill" | "decode";

/** Every phase, in display order. */
export const PHASES: readonly Phase[] = ["prefill", "chunked-prefill", "decode"];

/**
 * How scores become keep-sets (spec §3.4):
 * - `per-head`: the same budget for every (layer, KV head), exact top-k (`pair-head`);
 * - `per-layer`: one threshold per layer over its heads (`pair-layer`);
 * - `global`: one threshold over all layers and heads (`pair`, KVzip and Fast KVzip).
 */
export type SelectionPolicy = "per-head" | "per-layer" | "global";

/** Every selection policy, in display order. */
export const SELECTION_POLICIES: readonly SelectionPolicy[] = ["per-head", "per-layer", "global"];

/** A selection policy plus the optional AdaKV safeguard (spec §3.4 `adakv-layer`). */
export interface PolicySpec {
  policy: SelectionPolicy;
  /**
   * AdaKV safeguard fraction α: in every (layer, head), the top ⌊⌊m·r′⌋·α⌋ entries are kept
   * before the threshold is applied. 0 or absent = no safeguard. The spec's value is 0.2.
   */
  safeguard?: number;
}

/** The budget of one eviction. */
export type Budget =
  /** Kept fraction r of the context tokens, in (0, 1] (0.3 = evict 70 %). */
  | { keptRatio: number }
  /** Average entries per (evictable layer, KV head) after eviction (decode, spec §4.3). */
  | { entriesPerHead: number };

/**
 * Importance per entry: `grid[layer][head][i]` scores the i-th entry that
 * `cache.positions(layer, head)` lists at the time of the call. Higher = keep. Layers the selector
 * never evicts (sliding-window layers) may hold empty arrays. NaN marks an entry the method did
 * not score; the selector rejects it if that entry is up for eviction.
 */
export type ScoreGrid = Float32Array[][];

/** Everything a scorer may read about the run it belongs to. Created once per sample. */
export interface MethodContext {
  /** The model the phase runs (CPU or WebGPU backend). */
  model: Model<KvStore>;
  config: ModelConfig;
  /**
   * The store the phase fills, on whichever backend the model runs. Read it through the
   * backend-agnostic accessors (`positions`, `lengths`, `entryNorms`, `readEntries`,
   * `nextPosition`); only the phases and the selector change it, except that a method may run
   * extra forwards on top of it between `mark()` and `restore()` (KVzip's reconstruction
   * passes).
   */
  cache: KvStore;
  /** Absolute positions [contextStart, contextEnd) are the context; before it, the prefix. */
  contextStart: number;
  contextEnd: number;
  /** The prompt ids by absolute position, from `ids[0]` at position `idsStart`. */
  ids: Int32Array;
  idsStart: number;
  /** The model's tokenizer, or null when the model directory has none. */
  tokenizer: TextTokenizer | null;
  /** Seed of the sample (random scores, tie-breaking noise). */
  seed: number;
  /** The phase the scorer serves. */
  phase: Phase;
  /**
   * The phase's recent window in tokens (prefill: the lagging window; decode: the protected
   * window, 128 for Fast KVzip and 8 for the baselines of spec §4.4).
   */
  window: number;
  /**
   * Tokens per forward of the phase's prompt (the prefill chunk). A method that runs forwards
   * of its own (KVzip's reconstruction passes) runs them in chunks of this size, so that its
   * attention never holds more probabilities per head than the prefill's does.
   */
  forwardChunk: number;
}

/** What the phase asks of one {@linkcode Scorer.score} call. */
export interface ScoreRequest {
  /** Positions forwarded since the previous score call (or since the start): [start, end). */
  observed: { start: number; end: number };
  /** Only entries with positions in [start, end) can be evicted by this call. */
  range: { start: number; end: number };
  /** The budget this eviction aims at. Ratio-independent methods must ignore it. */
  budget: Budget;
  /**
   * Entries per head the selector keeps from the range on average: m·r′ after the window
   * adjustment (prefill; a token budget's whole N − window), or B (decode). Methods that split
   * their budget (H2O) read it.
   */
  keptPerHead: number;
}

/**
 * A method's per-sample state. The phases call, in order: `stats` and `observe` for every layer
 * of every forward, then `score` at each eviction point, then `onEvict` for each compacted
 * layer. `score` may be called more than once after the same observations (once per ratio of a
 * sweep for ratio-dependent methods), so it must not consume state.
 */
export interface Scorer {
  /** Statistics the attention pass should compute for `layer` (undefined = none). */
  stats?(layer: number): StatsRequest | undefined;
  /** Sees every layer of every forward of the phase, after attention. */
  observe?(tap: LayerTap): void | Promise<void>;
  /**
   * A linear map [hidden, P] of `layer`'s attention-input hidden state that the forward should
   * compute inside the layer's own graph; `observe` then gets it as `tap.projected` (CPU
   * backend; on WebGPU the tap carries the hidden state only, so handle both).
   */
  hiddenProjection?(layer: number): Float32Array | undefined | Promise<Float32Array | undefined>;
  /** Importance of every entry the store holds now; see {@linkcode ScoreGrid}. */
  score(request: ScoreRequest): ScoreGrid | Promise<ScoreGrid>;
  /**
   * After the selector compacted `layer`: `keep[h]` lists the indices (into the entries held
   * before) that remain, so per-entry state can stay aligned with the store.
   */
  onEvict?(layer: number, keep: readonly Int32Array[]): void;
}

/** Decode-phase defaults of a method (spec §4.3 for Fast KVzip, §4.4 for the baselines). */
export interface DecodeDefaults {
  /** Protected recent window in entries per head. */
  window: number;
  policy: PolicySpec;
}

/**
 * Decode defaults of the baselines (spec §4.4): a protected window of 8 entries and the same
 * budget for every (layer, KV head). Fast KVzip uses window 128 and the global policy (§4.3).
 */
export const BASELINE_DECODE: DecodeDefaults = Object.freeze({
  window: 8,
  policy: Object.freeze({ policy: "per-head" }) as PolicySpec,
});

/** Shape of the budget over layers, for methods like PyramidKV; see `layerBudgets`. */
export interface LayerBudgetInfo {
  /** Evictable layers, in order (sliding-window layers left out). */
  layers: number;
  /** Entries per head up for decision in this eviction. */
  population: number;
  /** Entries per head to keep on average (m·r′, a token budget's N − window, or decode's B). */
  kept: number;
}

/**
 * One eviction method.
 *
 * @typeParam P the parsed parameters (`z.infer` of `params`).
 */
export interface MethodDefinition<P = Record<string, unknown>> {
  /** Registry id, lower-case kebab (`snapkv`, `expected-attention`). */
  id: string;
  /** Display name. */
  title: string;
  /** The paper, or null for baselines without one (`full`). */
  paper: { title: string; url: string } | null;
  /** One line on what the method does. */
  summary: string;
  /**
   * The method's version: bump it when its scoring changes (a fix, another formula), since it is
   * part of every sweep cell id of the method: a resumed sweep then runs the method again instead
   * of reusing rows scored the old way. A whole number ≥ 1 or a non-empty string. Absent: the
   * cell ids leave it out (set it once the method has a change to mark; any value makes new
   * cells).
   */
  version?: number | string;
  /**
   * Parameters with defaults: a `z.object(...).strict()` whose fields each carry `.default()`
   * and `.describe()` (the registry reads both for `describeMethod` and `key=value` parsing).
   */
  params: z.ZodType<P>;
  signals: readonly Signal[];
  /** Phases the method acts in; an empty list means it never evicts (`full`). */
  phases: readonly Phase[];
  /**
   * True when the scores do not depend on the budget: one prefill and one scoring serve every
   * ratio of a sweep.
   */
  ratioIndependent: boolean;
  /** Default selection policy in the prefill phases. */
  policy: PolicySpec;
  /**
   * False for a method whose official evaluation keeps no lagging window of recent context
   * tokens after the prefill (KVzip's `eval.py`, spec §5): a sweep's "spec" window is then 0
   * for it. Default true: the spec's window (§3.1–3.2) applies.
   */
  lagWindow?: boolean;
  /** Decode-phase defaults; required when `phases` includes "decode". */
  decode?: DecodeDefaults;
  /**
   * Per-layer budget weights (mean 1 over the evictable layers) for the `per-head` policy, or
   * null for uniform budgets. PyramidKV uses it.
   */
  layerBudgets?(params: P, info: LayerBudgetInfo): Float64Array | null;
  /** A fresh scorer for one sample. */
  createScorer(params: P, context: MethodContext): Scorer;
  /**
   * For methods that read files of their own beside the model (Fast KVzip's gate weights):
   * check them against the model (an InputError naming the file when they are missing or do
   * not fit) and return what identifies them, e.g. a digest of the file. A sweep calls this
   * before any work, folds the identity into its cell ids (rows made with other files are
   * other cells) and records it in run.json. Absent: nothing to check.
   */
  artifacts?(params: P, model: { dir: string; config: ModelConfig }): Promise<string>;
  /**
   * Positions the method's own forwards take on top of a prompt whose context holds
   * `contextTokens` tokens (KVzip's reconstruction passes). A sweep checks the prompt plus these
   * against the model's `max_position_embeddings` before any work. Absent: none.
   */
  extraPositions?(
    params: P,
    prompt: { contextTokens: number; tokenizer: TextTokenizer | null },
  ): number;
  /**
   * For methods that need model-specific artefacts (gate weights): the conformance suite calls
   * this once per tiny random model; it creates what the method needs (e.g. random gates in
   * `model.dir`) and returns the raw parameters to run with. Absent: the defaults.
   */
  conformanceParams?(model: Model<KvStore>): Promise<Record<string, unknown>>;
}

/** A method definition with its parameters erased, as the registry stores it. */
// deno-lint-ignore no-explicit-any
export type AnyMethodDefinition = MethodDefinition<any>;
