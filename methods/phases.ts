/**
 * The phases every method shares: when to observe, when to score and what to evict.
 *
 * - {@linkcode prefillWithEviction}: one prefill of prefix + context, then one eviction
 *   (kvpress, KVzip's `eval.py`). Optional lagging window (default 0) and sinks (default 0).
 * - {@linkcode chunkedPrefillWithEviction}: spec §3.3. Chunks of 16 000 tokens; after each,
 *   the positions [start, processed − w) are decided with r′ (§3.2) and evicted for good;
 *   later chunks run over the evicted cache. w = 4096, or ⌊0.02·n⌋ when the context is
 *   shorter than a chunk. The official code applies the 2 % rule only with a gate; here it
 *   applies to every method (set `windowRatio: null` for the official baseline behaviour,
 *   which on short contexts keeps only the most recent ⌊r·n⌋ tokens).
 * - {@linkcode prefillAtRatios}: score once, prune at many ratios. One prefill and, for
 *   ratio-independent methods, one scoring; each ratio prunes its own `cache.clone()`.
 *   Cloning rather than nested keep-sets: with strict thresholds, the AdaKV safeguard and
 *   per-layer weights, keep-sets at two ratios need not nest, and a clone is exact for every
 *   policy. Only one pruned clone is alive at a time (the callback's).
 * - {@linkcode DecodeEviction} / {@linkcode generateWithEviction}: spec §4.2–4.4. A trigger
 *   after the prompt's prefill and after every forward whose first position is a multiple of
 *   `interval` (128); when the budget B·(layers)·H is exceeded, score and evict with the first
 *   `sinks` (4) positions and the last `window` entries of each head forced. The window is a
 *   per-method default: 128 with the global policy for Fast KVzip (§4.3), 8 with per-head
 *   budgets for the baselines (§4.4, whose code overrides every non-Fast-KVzip method to 8).
 *
 * Every prefill phase takes a kept ratio r, or a token budget: N context tokens per KV head
 * (`keptTokens`), asked as r = min(1, N / n) and kept as the whole number N (N − w entries of
 * each head besides the window w ≤ N), never as ⌊(N / n)·n⌋ nor under the pair rule's K − 1,
 * which can keep N − 1. The per-head policy keeps exactly N of every head (with layer weights,
 * PyramidKV's, N on average over the layers), the per-layer and global policies N per head on
 * average over the heads they pool (ties at the threshold kept, as with decode's budget B).
 *
 * Prompt positions: the prefix is [base, base + s), the context [base + s, base + s + n),
 * where base is the cache's next position (0 for a fresh cache). Only the context is evicted.
 *
 * Every phase runs on either backend: the type parameter S is the model's store (CpuKvStore
 * by default, GpuKvStore for a WebGPU model).
 *
 * @module
 */

import { InputError } from "../errors.ts";
import { generate, type GenerateOptions, type GenerateResult } from "../engine/generate.ts";
import {
  DEFAULT_PREFILL_CHUNK,
  type ForwardTaps,
  type LayerTap,
  type Model,
} from "../engine/model.ts";
import type { TextTokenizer } from "../engine/tokenizer.ts";
import type { CpuKvStore, KvStore } from "../kernels/kv_store.ts";
import { getMethod, parseMethodParams } from "./registry.ts";
import {
  adjustWindow,
  checkScoreGrid,
  describeStore,
  evictableLayers,
  type EvictionReport,
  evictWithScores,
  type SelectBudget,
} from "./select.ts";
import type {
  AnyMethodDefinition,
  MethodContext,
  Phase,
  PolicySpec,
  ScoreGrid,
  Scorer,
  ScoreRequest,
} from "./types.ts";

/** Spec §3.1: eviction chunk of the chunked prefill, in tokens. */
export const SPEC_PREFILL_CHUNK = 16_000;
/** Spec §3.1: lagging window of the chunked prefill, in tokens. */
export const SPEC_PREFILL_WINDOW = 4096;
/** Spec §3.2: the window is ⌊0.02·n⌋ when the context is shorter than a chunk. */
export const SPEC_WINDOW_RATIO = 0.02;
/** Spec §4.1–4.2: decode-time trigger period in tokens. */
export const SPEC_DECODE_INTERVAL = 128;
/** Spec §4.3: first positions forced during decode-time eviction. */
export const SPEC_DECODE_SINKS = 4;

const END_OF_TIME = 2 ** 31 - 1;

/** The prompt: a prefix that is never evicted, then the context. */
export interface PromptParts {
  prefix: Int32Array;
  context: Int32Array;
}

/** Which method, with raw parameters (validated against its schema). */
export interface MethodChoice {
  method: string | AnyMethodDefinition;
  params?: Record<string, unknown>;
  /** Override of the method's default selection policy. */
  policy?: PolicySpec;
  /** Sample seed (random scores, tie-breaking). Default 0. */
  seed?: number;
  /** Default: the model's tokenizer, or null when it has none. */
  tokenizer?: TextTokenizer | null;
}

/** Options of {@linkcode prefillWithEviction}; S is the model's store type. */
export interface PrefillEvictionOptions<S extends KvStore = CpuKvStore> extends MethodChoice {
  /** Kept fraction r of the context tokens, in (0, 1]; give it or `keptTokens`. */
  keptRatio?: number;
  /**
   * Context tokens N to keep per KV head, a whole number ≥ 1, instead of `keptRatio`: asked as
   * r = min(1, N / n) of the n context tokens, kept as exactly N entries per head (see the
   * module's notes).
   */
  keptTokens?: number;
  /** Lagging window of recent context tokens kept outside the budget (§3.2); default 0. */
  window?: number;
  /** Positions below this are forced (kept, counted); default 0. */
  sinks?: number;
  /** Forward chunk in tokens (compute only); default the model's. */
  chunkSize?: number;
  /** The store to fill; default a fresh one. */
  cache?: S;
  /** Return the scores and positions as they were before eviction (inspection). */
  keepScores?: boolean;
}

/** Scores as they stood before an eviction, with the positions they belong to. */
export interface ScoreSnapshot {
  /** positions[layer][head]: the entries' absolute positions. */
  positions: Int32Array[][];
  scores: ScoreGrid;
}

/** What a prefill with eviction produced. */
export interface PrefillEvictionResult<S extends KvStore = CpuKvStore> {
  cache: S;
  /** Logits of the last prompt position (computed before any eviction of the last chunk). */
  logits: Float32Array;
  /** The final state; for chunked prefill, the sums over every eviction. */
  report: EvictionReport;
  /** One report per eviction (one for one-shot prefill). */
  evictions: EvictionReport[];
  prefillMs: number;
  scoreMs: number;
  scores?: ScoreSnapshot;
}

interface Resolved {
  definition: AnyMethodDefinition;
  params: unknown;
  policy: PolicySpec;
}

function resolve(choice: MethodChoice, phase: Phase): Resolved {
  const definition = typeof choice.method === "string" ? getMethod(choice.method) : choice.method;
  const params = parseMethodParams(definition, choice.params ?? {});
  if (definition.phases.length > 0 && !definition.phases.includes(phase)) {
    throw new InputError(
      `method ${definition.id}: does not act in phase "${phase}" (it acts in: ${
        definition.phases.join(", ")
      })`,
    );
  }
  const policy = choice.policy ??
    (phase === "decode" ? definition.decode?.policy : undefined) ??
    definition.policy;
  return { definition, params, policy };
}

function checkRatio(r: number): void {
  if (!(r > 0 && r <= 1)) {
    throw new InputError(`kept ratio: expected a number in (0, 1], got ${r}`);
  }
}

/** A prefill's budget for a context of n tokens. */
interface PrefillBudget {
  /** r: as given, or a token budget's min(1, N / n). */
  keptRatio: number;
  /** N for a token budget, else null. */
  keptTokens: number | null;
}

/** The budget `o` asks for a context of `n` tokens: exactly one of keptRatio and keptTokens. */
function prefillBudget(o: { keptRatio?: number; keptTokens?: number }, n: number): PrefillBudget {
  if ((o.keptRatio === undefined) === (o.keptTokens === undefined)) {
    throw new InputError(
      `prefill budget: expected either keptRatio or keptTokens, got ${
        o.keptRatio === undefined ? "neither" : "both"
      }`,
    );
  }
  if (o.keptTokens === undefined) {
    checkRatio(o.keptRatio!);
    return { keptRatio: o.keptRatio!, keptTokens: null };
  }
  checkCount("kept tokens", o.keptTokens, 1);
  const N = o.keptTokens;
  return { keptRatio: N >= n ? 1 : N / n, keptTokens: N };
}

/** The window and what is kept of the tokens decided besides it, for one prefill. */
interface PrefillPlan {
  window: number;
  /** r′: the kept fraction of the decided tokens (§3.2). */
  populationRatio: number;
  /** A token budget's N − window: entries kept per head of the decided tokens; else null. */
  populationTokens: number | null;
}

/**
 * Spec §3.2's window adjustment for a ratio ({@linkcode adjustWindow}); for a token budget N
 * below the n context tokens, the same in whole numbers: the window w, cut to N when N is
 * smaller, and N − w entries of each head from the n − w decided tokens.
 */
function planPrefill(budget: PrefillBudget, n: number, window: number): PrefillPlan {
  const N = budget.keptTokens;
  if (N === null || budget.keptRatio >= 1) {
    return { ...adjustWindow(budget.keptRatio, n, window), populationTokens: null };
  }
  const w = Math.min(Math.max(0, Math.floor(window)), N);
  return { window: w, populationRatio: (N - w) / (n - w), populationTokens: N - w };
}

/**
 * What the selector is asked when it decides the tokens [from, to) of the `m` decided by the
 * whole prefill (offsets from the first), and the entries per head that keeps on average: r′
 * of them for a ratio; for a token budget, ⌊to·K/m⌋ − ⌊from·K/m⌋ entries per head (K = N − w),
 * whole numbers that add up to K over the chunks of a chunked prefill.
 */
function rangeBudget(
  plan: PrefillPlan,
  m: number,
  range: { from: number; to: number },
): { budget: SelectBudget; keptPerHead: number } {
  const K = plan.populationTokens;
  if (K === null) {
    const keptPerHead = (range.to - range.from) * plan.populationRatio;
    return { budget: { ratio: plan.populationRatio }, keptPerHead };
  }
  // Products and quotients of whole numbers below 2⁵³: the floors are exact.
  const B = Math.floor((range.to * K) / m) - Math.floor((range.from * K) / m);
  return { budget: { entriesPerHead: B }, keptPerHead: B };
}

function checkCount(name: string, value: number | undefined, min = 0): void {
  if (value === undefined) return;
  if (!Number.isInteger(value) || value < min) {
    throw new InputError(
      `${name}: expected ${min === 0 ? "a non-negative" : "a positive"} integer, got ${value}`,
    );
  }
}

function defaultTokenizer(model: Model<KvStore>): TextTokenizer | null {
  try {
    return model.tokenizer();
  } catch {
    return null;
  }
}

function concat(a: Int32Array, b: Int32Array): Int32Array {
  const out = new Int32Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** Taps that feed a scorer. */
export function scorerTaps(scorer: Scorer, onFirstLayer?: (tap: LayerTap) => void): ForwardTaps {
  return {
    stats: (layer: number) => scorer.stats?.(layer),
    hiddenProjection: (layer: number) => scorer.hiddenProjection?.(layer),
    onLayer: (tap: LayerTap) => {
      if (tap.layer === 0) onFirstLayer?.(tap);
      return scorer.observe?.(tap);
    },
  };
}

/**
 * The scorer's grid for `request`, checked against the store it scores before anything reads
 * it ({@linkcode checkScoreGrid}): a plugin's broken grid is one error line naming `id`.
 */
async function scoreOf(
  id: string,
  scorer: Scorer,
  cache: KvStore,
  request: ScoreRequest,
): Promise<ScoreGrid> {
  const scores = await scorer.score(request);
  checkScoreGrid(cache, scores, { method: id });
  return scores;
}

function context(
  model: Model<KvStore>,
  cache: KvStore,
  o: {
    ids: Int32Array;
    base: number;
    prefix: number;
    choice: MethodChoice;
    phase: Phase;
    window: number;
    forwardChunk: number;
  },
): MethodContext {
  return {
    model,
    config: model.config,
    cache,
    contextStart: o.base + o.prefix,
    contextEnd: o.base + o.ids.length,
    ids: o.ids,
    idsStart: o.base,
    tokenizer: o.choice.tokenizer === undefined ? defaultTokenizer(model) : o.choice.tokenizer,
    seed: o.choice.seed ?? 0,
    phase: o.phase,
    window: o.window,
    forwardChunk: o.forwardChunk,
  };
}

function snapshot(cache: KvStore, scores: ScoreGrid): ScoreSnapshot {
  const positions: Int32Array[][] = [];
  for (let l = 0; l < cache.shape.numLayers; l++) {
    const row: Int32Array[] = [];
    for (let h = 0; h < cache.shape.numKvHeads; h++) {
      row.push(cache.positions(l, h).slice());
    }
    positions.push(row);
  }
  return { positions, scores: scores.map((row) => row.map((s) => s.slice())) };
}

function layerWeights(
  r: Resolved,
  cache: KvStore,
  population: number,
  kept: number,
): Float64Array | null {
  if (r.definition.layerBudgets === undefined) return null;
  const layers = evictableLayers(cache);
  const compact = r.definition.layerBudgets(r.params, { layers: layers.length, population, kept });
  if (compact === null) return null;
  const weights = new Float64Array(cache.shape.numLayers).fill(1);
  layers.forEach((l, i) => weights[l] = compact[i]);
  return weights;
}

function noEviction(
  cache: KvStore,
  o: { policy: PolicySpec; keptRatio: number | null; window: number; context: [number, number] },
): EvictionReport {
  return {
    policy: o.policy,
    keptRatioAsked: o.keptRatio,
    entriesPerHeadAsked: null,
    populationRatio: null,
    window: o.window,
    population: 0,
    evicted: 0,
    ...describeStore(cache, { context: { start: o.context[0], end: o.context[1] } }),
    selectMs: 0,
    compactMs: 0,
  };
}

/**
 * Prefill prefix + context, then evict once: keep r of the context (the window adjustment of
 * §3.2 applies when `window` > 0).
 *
 * @example
 * ```ts
 * const { cache, report } = await prefillWithEviction(model, { prefix, context }, {
 *   method: "snapkv", keptRatio: 0.3,
 * });
 * ```
 */
export async function prefillWithEviction<S extends KvStore = CpuKvStore>(
  model: Model<S>,
  prompt: PromptParts,
  options: PrefillEvictionOptions<S>,
): Promise<PrefillEvictionResult<S>> {
  const n = prompt.context.length;
  const budget = prefillBudget(options, n);
  checkCount("window", options.window);
  checkCount("sinks", options.sinks);
  checkCount("chunk size", options.chunkSize, 1);
  const r = resolve(options, "prefill");
  const cache = options.cache ?? model.createCache();
  const base = cache.nextPosition;
  const ids = concat(prompt.prefix, prompt.context);
  const plan = planPrefill(budget, n, options.window ?? 0);
  const { window, populationRatio } = plan;
  const ctx = context(model, cache, {
    ids,
    base,
    prefix: prompt.prefix.length,
    choice: options,
    phase: "prefill",
    window,
    forwardChunk: options.chunkSize ?? DEFAULT_PREFILL_CHUNK,
  });
  const scorer = r.definition.createScorer(r.params, ctx);
  const t0 = performance.now();
  const logits = await model.prefill(ids, cache, {
    chunkSize: options.chunkSize,
    taps: scorerTaps(scorer),
  });
  const prefillMs = performance.now() - t0;
  const contextRange: [number, number] = [ctx.contextStart, ctx.contextEnd];
  const { keptRatio } = budget;
  if (keptRatio >= 1 || r.definition.phases.length === 0) {
    const report = noEviction(cache, {
      policy: r.policy,
      keptRatio,
      window,
      context: contextRange,
    });
    return { cache, logits, report, evictions: [report], prefillMs, scoreMs: 0 };
  }
  const m = n - window;
  const selected = rangeBudget(plan, m, { from: 0, to: m });
  const t1 = performance.now();
  const scores = await scoreOf(r.definition.id, scorer, cache, {
    observed: { start: base, end: base + ids.length },
    range: { start: ctx.contextStart, end: ctx.contextEnd - window },
    budget: { keptRatio },
    keptPerHead: selected.keptPerHead,
  });
  const scoreMs = performance.now() - t1;
  const kept = snapshotIf(options.keepScores, cache, scores);
  const report = evictWithScores(cache, scores, {
    budget: selected.budget,
    policy: r.policy,
    range: { start: ctx.contextStart, end: ctx.contextEnd - window },
    sinks: options.sinks ?? 0,
    layerWeights: layerWeights(r, cache, m, selected.keptPerHead),
    context: { start: ctx.contextStart, end: ctx.contextEnd },
    asked: { keptRatio, populationRatio },
    window,
    onEvict: scorer.onEvict?.bind(scorer),
    method: r.definition.id,
  });
  return { cache, logits, report, evictions: [report], prefillMs, scoreMs, scores: kept };
}

function snapshotIf(
  wanted: boolean | undefined,
  cache: KvStore,
  scores: ScoreGrid,
): ScoreSnapshot | undefined {
  return wanted ? snapshot(cache, scores) : undefined;
}

/** Options of {@linkcode chunkedPrefillWithEviction}. */
export interface ChunkedPrefillOptions<S extends KvStore = CpuKvStore>
  extends Omit<PrefillEvictionOptions<S>, "keepScores"> {
  /** Eviction chunk in tokens (spec §3.1: 16 000). */
  chunk?: number;
  /** Lagging window (spec: 4096). */
  window?: number;
  /** When the context is shorter than a chunk, w = ⌊windowRatio·n⌋ (spec: 0.02); null = never. */
  windowRatio?: number | null;
}

/**
 * Spec §3.3: prefill in chunks, evicting after each one with decisions that are final.
 *
 * @example
 * ```ts
 * const { report } = await chunkedPrefillWithEviction(model, { prefix, context }, {
 *   method: "expected-attention", keptRatio: 0.3,
 * });
 * ```
 */
export async function chunkedPrefillWithEviction<S extends KvStore = CpuKvStore>(
  model: Model<S>,
  prompt: PromptParts,
  options: ChunkedPrefillOptions<S>,
): Promise<PrefillEvictionResult<S>> {
  const n = prompt.context.length;
  const budget = prefillBudget(options, n);
  checkCount("chunk", options.chunk, 1);
  checkCount("window", options.window);
  checkCount("sinks", options.sinks);
  checkCount("chunk size", options.chunkSize, 1);
  const ratioOfWindow = options.windowRatio === undefined ? SPEC_WINDOW_RATIO : options.windowRatio;
  if (ratioOfWindow !== null && !(ratioOfWindow >= 0 && ratioOfWindow <= 1)) {
    throw new InputError(`window ratio: expected a number in [0, 1], got ${ratioOfWindow}`);
  }
  const r = resolve(options, "chunked-prefill");
  const cache = options.cache ?? model.createCache();
  const base = cache.nextPosition;
  const ids = concat(prompt.prefix, prompt.context);
  const c = options.chunk ?? SPEC_PREFILL_CHUNK;
  let w = options.window ?? SPEC_PREFILL_WINDOW;
  if (n < c && ratioOfWindow !== null) w = Math.floor(ratioOfWindow * n);
  const plan = planPrefill(budget, n, w);
  const { window, populationRatio } = plan;
  const { keptRatio } = budget;
  const ctx = context(model, cache, {
    ids,
    base,
    prefix: prompt.prefix.length,
    choice: options,
    phase: "chunked-prefill",
    window,
    forwardChunk: options.chunkSize ?? DEFAULT_PREFILL_CHUNK,
  });
  const scorer = r.definition.createScorer(r.params, ctx);
  const taps = scorerTaps(scorer);
  const evicting = keptRatio < 1 && r.definition.phases.length > 0;
  const evictions: EvictionReport[] = [];
  let logits: Float32Array = new Float32Array(0);
  let start = ctx.contextStart;
  let observed = base;
  let prefillMs = 0;
  let scoreMs = 0;
  for (let from = 0; from < ids.length; from += c) {
    const to = Math.min(ids.length, from + c);
    const t0 = performance.now();
    logits = await model.prefill(ids.subarray(from, to), cache, {
      chunkSize: options.chunkSize,
      taps,
    });
    prefillMs += performance.now() - t0;
    if (!evicting) continue;
    const end = base + to - window;
    if (end <= start) continue;
    const selected = rangeBudget(plan, n - window, {
      from: start - ctx.contextStart,
      to: end - ctx.contextStart,
    });
    const t1 = performance.now();
    const scores = await scoreOf(r.definition.id, scorer, cache, {
      observed: { start: observed, end: base + to },
      range: { start, end },
      budget: { keptRatio },
      keptPerHead: selected.keptPerHead,
    });
    scoreMs += performance.now() - t1;
    observed = base + to;
    evictions.push(evictWithScores(cache, scores, {
      budget: selected.budget,
      policy: r.policy,
      range: { start, end },
      sinks: options.sinks ?? 0,
      layerWeights: layerWeights(r, cache, end - start, selected.keptPerHead),
      context: { start: ctx.contextStart, end: ctx.contextEnd },
      asked: { keptRatio, populationRatio },
      window,
      onEvict: scorer.onEvict?.bind(scorer),
      method: r.definition.id,
    }));
    start = end;
  }
  const contextRange: [number, number] = [ctx.contextStart, ctx.contextEnd];
  const final = noEviction(cache, {
    policy: r.policy,
    keptRatio,
    window,
    context: contextRange,
  });
  const report: EvictionReport = {
    ...final,
    populationRatio: evicting ? populationRatio : null,
    population: evictions.reduce((a, e) => a + e.population, 0),
    evicted: evictions.reduce((a, e) => a + e.evicted, 0),
    selectMs: evictions.reduce((a, e) => a + e.selectMs, 0),
    compactMs: evictions.reduce((a, e) => a + e.compactMs, 0),
  };
  return { cache, logits, report, evictions, prefillMs, scoreMs };
}

/** One ratio's pruned cache, handed to {@linkcode RatioSweepOptions.onRatio}. */
export interface RatioResult<S extends KvStore = CpuKvStore> {
  keptRatio: number;
  /** The token budget N this ratio keeps (min(1, N / n) is `keptRatio`), or null for a ratio. */
  keptTokens: number | null;
  /** A pruned clone; the callback owns it until it returns. */
  cache: S;
  report: EvictionReport;
  /** Logits of the last prompt position (the same for every ratio). */
  logits: Float32Array;
  /**
   * Scoring time behind this ratio's eviction: for ratio-independent methods the one shared
   * scoring, given with every ratio as the shared prefill is (the sum over ratios is not the
   * work done; the result's `scoreMs` is).
   */
  scoreMs: number;
}

/** Options of {@linkcode prefillAtRatios}. */
export interface RatioSweepOptions<S extends KvStore = CpuKvStore>
  extends Omit<PrefillEvictionOptions<S>, "keptRatio" | "keptTokens" | "keepScores"> {
  /** Kept ratios, each in (0, 1]; give them or `keptTokens`. */
  ratios?: readonly number[];
  /**
   * Token budgets instead of `ratios`: context tokens N kept per KV head, each pruned at the
   * ratio min(1, N / n) and kept as exactly N entries per head (see the module's notes).
   */
  keptTokens?: readonly number[];
  onRatio: (result: RatioResult<S>) => void | Promise<void>;
}

/**
 * Score once, prune at many ratios (one-shot prefill only: chunked prefill makes later chunks
 * depend on earlier evictions). The scorer is not told about the clones' evictions, so its
 * state stays aligned with the unpruned cache for the next ratio.
 *
 * @example
 * ```ts
 * await prefillAtRatios(model, { prefix, context }, {
 *   method: "kvzip", ratios: [0.75, 0.5, 0.3],
 *   onRatio: async ({ cache, report }) => { await answerQueries(cache); },
 * });
 * ```
 */
export async function prefillAtRatios<S extends KvStore = CpuKvStore>(
  model: Model<S>,
  prompt: PromptParts,
  options: RatioSweepOptions<S>,
): Promise<{ cache: S; prefillMs: number; scoreMs: number; reports: EvictionReport[] }> {
  const n = prompt.context.length;
  if ((options.ratios === undefined) === (options.keptTokens === undefined)) {
    throw new InputError(
      `prefillAtRatios: expected either ratios or keptTokens, got ${
        options.ratios === undefined ? "neither" : "both"
      }`,
    );
  }
  const budgets = options.ratios?.map((keptRatio) => prefillBudget({ keptRatio }, n)) ??
    options.keptTokens!.map((keptTokens) => prefillBudget({ keptTokens }, n));
  if (budgets.length === 0) {
    throw new InputError(
      options.ratios === undefined
        ? "kept tokens: expected at least one token budget"
        : "ratios: expected at least one ratio",
    );
  }
  checkCount("window", options.window);
  checkCount("sinks", options.sinks);
  checkCount("chunk size", options.chunkSize, 1);
  const r = resolve(options, "prefill");
  const cache = options.cache ?? model.createCache();
  const base = cache.nextPosition;
  const ids = concat(prompt.prefix, prompt.context);
  // The scorer sees the largest window any ratio uses; windows shrink only for tiny budgets.
  const ctx = context(model, cache, {
    ids,
    base,
    prefix: prompt.prefix.length,
    choice: options,
    phase: "prefill",
    window: Math.min(options.window ?? 0, n),
    forwardChunk: options.chunkSize ?? DEFAULT_PREFILL_CHUNK,
  });
  const scorer = r.definition.createScorer(r.params, ctx);
  const t0 = performance.now();
  const logits = await model.prefill(ids, cache, {
    chunkSize: options.chunkSize,
    taps: scorerTaps(scorer),
  });
  const prefillMs = performance.now() - t0;
  let sharedScoreMs = 0;
  let shared: ScoreGrid | null = null;
  let scoreMs = 0;
  const reports: EvictionReport[] = [];
  for (const budget of budgets) {
    const { keptRatio, keptTokens } = budget;
    const plan = planPrefill(budget, n, options.window ?? 0);
    const { window, populationRatio } = plan;
    const m = n - window;
    const selected = rangeBudget(plan, m, { from: 0, to: m });
    const clone = cache.clone() as S;
    let report: EvictionReport;
    let ratioScoreMs = 0;
    if (keptRatio >= 1 || r.definition.phases.length === 0) {
      report = noEviction(clone, {
        policy: r.policy,
        keptRatio,
        window,
        context: [ctx.contextStart, ctx.contextEnd],
      });
    } else {
      let scores: ScoreGrid | null = shared;
      ratioScoreMs = sharedScoreMs;
      if (scores === null) {
        const t1 = performance.now();
        scores = await scoreOf(r.definition.id, scorer, clone, {
          observed: { start: base, end: base + ids.length },
          range: { start: ctx.contextStart, end: ctx.contextEnd - window },
          budget: { keptRatio },
          keptPerHead: selected.keptPerHead,
        });
        ratioScoreMs = performance.now() - t1;
        scoreMs += ratioScoreMs;
        if (r.definition.ratioIndependent) {
          shared = scores;
          sharedScoreMs = ratioScoreMs;
        }
      }
      report = evictWithScores(clone, scores, {
        budget: selected.budget,
        policy: r.policy,
        range: { start: ctx.contextStart, end: ctx.contextEnd - window },
        sinks: options.sinks ?? 0,
        layerWeights: layerWeights(r, clone, m, selected.keptPerHead),
        context: { start: ctx.contextStart, end: ctx.contextEnd },
        asked: { keptRatio, populationRatio },
        window,
        method: r.definition.id,
      });
    }
    reports.push(report);
    // The clone is not released to the pool: it would hold a pruned copy's storage, which the
    // next ratio's full-size clone cannot use, beside the live cache.
    await options.onRatio({
      keptRatio,
      keptTokens,
      cache: clone,
      report,
      logits,
      scoreMs: ratioScoreMs,
    });
  }
  return { cache, prefillMs, scoreMs, reports };
}

/** Options of decode-time eviction. */
export interface DecodeEvictionOptions extends MethodChoice {
  /** B: average entries per (decided layer, KV head) after each eviction. */
  entriesPerHead: number;
  /** Trigger period in tokens (spec §4.2: 128). */
  interval?: number;
  /** Protected recent window; default the method's decode default (128 or 8). */
  window?: number;
  /** Positions below this are forced; default 4. */
  sinks?: number;
  /**
   * Entries before this position are outside the budget and never evicted (e.g. a context
   * compressed at prefill, under a query). Default: the cache's next position at creation.
   */
  protectBefore?: number;
}

/**
 * Decode-time eviction for {@linkcode generate}: pass `prefillTaps`, `decodeTaps` and
 * `beforeDecodeStep` to it, then call `finish()`. {@linkcode generateWithEviction} does that.
 */
export class DecodeEviction<S extends KvStore = CpuKvStore> {
  /** One report per eviction that happened. */
  readonly reports: EvictionReport[] = [];
  /** Triggers seen (evicting or not). */
  triggers = 0;
  /** Wall time of the scorer's `score` calls, summed over the evictions. */
  scoreMs = 0;
  readonly prefillTaps: ForwardTaps;
  readonly decodeTaps: ForwardTaps;
  readonly #cache: S;
  readonly #scorer: Scorer;
  readonly #resolved: Resolved;
  readonly #budget: number;
  readonly #interval: number;
  readonly #window: number;
  readonly #sinks: number;
  readonly #protectBefore: number;
  #due = false;
  #observed: number;

  constructor(
    model: Model<S>,
    prompt: { cache: S; ids: Int32Array },
    options: DecodeEvictionOptions,
  ) {
    checkCount("entries per head", options.entriesPerHead, 1);
    checkCount("interval", options.interval, 1);
    checkCount("window", options.window);
    checkCount("sinks", options.sinks);
    this.#resolved = resolve(options, "decode");
    const def = this.#resolved.definition;
    this.#cache = prompt.cache;
    const base = prompt.cache.nextPosition;
    this.#protectBefore = options.protectBefore ?? base;
    this.#budget = options.entriesPerHead;
    this.#interval = options.interval ?? SPEC_DECODE_INTERVAL;
    this.#window = options.window ?? def.decode?.window ?? 0;
    this.#sinks = options.sinks ?? SPEC_DECODE_SINKS;
    this.#observed = base;
    const ctx = context(model, prompt.cache, {
      ids: prompt.ids,
      base,
      prefix: Math.max(0, Math.min(prompt.ids.length, this.#protectBefore - base)),
      choice: options,
      phase: "decode",
      window: this.#window,
      forwardChunk: DEFAULT_PREFILL_CHUNK,
    });
    this.#scorer = def.createScorer(this.#resolved.params, ctx);
    this.prefillTaps = scorerTaps(this.#scorer, () => {
      this.#due = true;
    });
    this.decodeTaps = scorerTaps(this.#scorer, (tap) => {
      if (tap.positions[0] % this.#interval === 0) this.#due = true;
    });
  }

  /** Pass as {@linkcode GenerateOptions.beforeDecodeStep}: applies a pending trigger. */
  async beforeDecodeStep(): Promise<void> {
    await this.#applyPending();
  }

  /** Apply the trigger of the last forward, if any (call after generation ends). */
  async finish(): Promise<void> {
    await this.#applyPending();
  }

  async #applyPending(): Promise<void> {
    if (!this.#due) return;
    this.#due = false;
    this.triggers++;
    if (this.#resolved.definition.phases.length === 0) return;
    const cache = this.#cache;
    const layers = evictableLayers(cache);
    const H = cache.shape.numKvHeads;
    const policy = this.#resolved.policy.policy;
    // The population of each decided head: entries at or after protectBefore.
    const counts: number[][] = layers.map((l) =>
      Array.from({ length: H }, (_, h) => {
        const positions = cache.positions(l, h);
        let lo = 0;
        while (lo < positions.length && positions[lo] < this.#protectBefore) lo++;
        return positions.length - lo;
      })
    );
    const B = this.#budget;
    const total = counts.flat().reduce((a, b) => a + b, 0);
    const over = policy === "global"
      ? total > B * layers.length * H
      : policy === "per-layer"
      ? counts.some((row) => row.reduce((a, b) => a + b, 0) > B * H)
      : counts.some((row) => row.some((c) => c > B));
    if (!over) return;
    const end = cache.nextPosition;
    const t0 = performance.now();
    const scores = await scoreOf(this.#resolved.definition.id, this.#scorer, cache, {
      observed: { start: this.#observed, end },
      range: { start: this.#protectBefore, end: END_OF_TIME },
      budget: { entriesPerHead: B },
      keptPerHead: B,
    });
    this.scoreMs += performance.now() - t0;
    this.#observed = end;
    const population = total / Math.max(1, layers.length * H);
    this.reports.push(evictWithScores(cache, scores, {
      budget: { entriesPerHead: B },
      policy: this.#resolved.policy,
      range: { start: this.#protectBefore, end: END_OF_TIME },
      sinks: this.#sinks,
      recent: this.#window,
      layerWeights: layerWeights(this.#resolved, cache, population, B),
      context: { start: this.#protectBefore, end },
      asked: { entriesPerHead: B },
      window: this.#window,
      onEvict: this.#scorer.onEvict?.bind(this.#scorer),
      method: this.#resolved.definition.id,
    }));
  }
}

/** Options of {@linkcode generateWithEviction}. */
export interface GenerateWithEvictionOptions<S extends KvStore = CpuKvStore>
  extends Omit<GenerateOptions<S>, "prefillTaps" | "decodeTaps" | "beforeDecodeStep"> {
  eviction: DecodeEvictionOptions;
  /** The store to continue from; default a fresh one. */
  cache?: S;
}

/**
 * Greedy generation with decode-time eviction (spec §4).
 *
 * @example
 * ```ts
 * const out = await generateWithEviction(model, promptIds, {
 *   maxNewTokens: 512, eviction: { method: "snapkv", entriesPerHead: 256 },
 * });
 * ```
 */
export async function generateWithEviction<S extends KvStore = CpuKvStore>(
  model: Model<S>,
  promptIds: Int32Array,
  options: GenerateWithEvictionOptions<S>,
): Promise<
  GenerateResult & { cache: S; evictions: EvictionReport[]; triggers: number; scoreMs: number }
> {
  const cache = options.cache ?? model.createCache();
  const eviction = new DecodeEviction<S>(model, { cache, ids: promptIds }, options.eviction);
  const { eviction: _e, cache: _c, ...rest } = options;
  const result = await generate(model, cache, promptIds, {
    ...rest,
    prefillTaps: eviction.prefillTaps,
    decodeTaps: eviction.decodeTaps,
    beforeDecodeStep: () => eviction.beforeDecodeStep(),
  });
  await eviction.finish();
  return {
    ...result,
    cache,
    evictions: eviction.reports,
    triggers: eviction.triggers,
    scoreMs: eviction.scoreMs,
  };
}
