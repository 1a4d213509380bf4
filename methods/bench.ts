/**
 * What eviction costs on top of a full-cache prefill, for `deno task bench --methods`: each
 * method's one-shot prefill with eviction against plain prefills of the same ids, measured in
 * the same run, runs interleaved (full, then each method, repeated) and medians kept, so a
 * machine that slows down mid-run weighs on both sides.
 *
 * Per method the figures split the cost where it arises:
 * - `observeMs`: inside the scorer's taps during the prefill (Fast KVzip's gate calls, query
 *   buffers, Expected Attention's query statistics);
 * - `projectionMs`: the hidden-state projections the scorer asked the model to compute inside
 *   its layer graphs (Fast KVzip's gate projections). They run inside the prefill's own
 *   sessions, so each distinct shape is timed alone as the same MatMul with the model's threads
 *   (median of 9) and summed over the calls;
 * - `attentionMs`: inside the attention executor during the prefill, which includes the fused
 *   statistics (H2O's column sums, SnapKV's window means); compare with the full prefill's;
 * - `statisticsMs`: those statistics alone: every attention call that asked for them (recorded
 *   in the first timed run) replayed with and without them on the same inputs;
 * - `scoreMs`: the scoring call after the prefill (KVzip: its reconstruction passes);
 * - `selectMs` and `compactMs`: the one eviction.
 * `overhead` = (prefill with the method − full prefill + scoring) / full prefill, end to end,
 * paired run by run (each method run with the full prefill just before it), then the median.
 * `directOverhead` = (observe + projections + statistics + score) / full prefill.
 *
 * Attention is timed by wrapping the model's executor ({@linkcode TimedAttention}), so load
 * the model with one (CPU backend).
 *
 * @example
 * ```ts
 * const attention = new TimedAttention(new OrtAttention());
 * const model = await Model.load(dir, { attention });
 * const result = await benchMethods(model, ids, { attention, methods: ["snapkv", "h2o"] });
 * ```
 *
 * @module
 */

import { hiddenProjectionNode } from "../engine/graphs.ts";
import type { Model } from "../engine/model.ts";
import { GraphBuilder } from "../kernels/onnx/graph.ts";
import { createSession, tensorF32 } from "../kernels/ort.ts";
import { latencyMs } from "../bench/runtime.ts";
import {
  type AttendOptions,
  type AttendResult,
  type AttentionExecutor,
  type HeadSegment,
  type KvStore,
  requestedStats,
} from "../kernels/kv_store.ts";
import { prefillWithEviction } from "./phases.ts";
import { getMethod } from "./registry.ts";
import type { AnyMethodDefinition, Scorer } from "./types.ts";

/** The shape of one attention call that asked for statistics, and how often it was made. */
export interface StatisticsCall {
  /** Queries in the call. */
  tokens: number;
  /** Entries per KV head. */
  lengths: number[];
  group: number;
  headDim: number;
  options: AttendOptions;
  count: number;
}

/**
 * An attention executor that adds up the wall time spent in the one it wraps and, while
 * `recording`, the shapes of the calls that asked for statistics (see
 * {@linkcode timeStatistics}).
 */
export class TimedAttention implements AttentionExecutor {
  readonly inner: AttentionExecutor;
  /** Milliseconds spent in `attend` since creation. */
  ms = 0;
  /** Whether calls with statistics are being recorded into `calls`. */
  recording = false;
  /** Recorded calls with statistics, by shape. */
  readonly calls = new Map<string, StatisticsCall>();

  constructor(inner: AttentionExecutor) {
    this.inner = inner;
  }

  /** As the wrapped executor: timing must not add the store's layout conversion. */
  get headMajor(): boolean | undefined {
    return this.inner.headMajor;
  }

  async attend(
    segments: readonly HeadSegment[],
    query: { q: Float32Array; positions: Int32Array; group: number; headDim: number },
    options: AttendOptions,
  ): Promise<AttendResult> {
    if (this.recording && requestedStats(options).length > 0) {
      const call = {
        tokens: query.positions.length,
        lengths: segments.map((s) => s.length),
        group: query.group,
        headDim: query.headDim,
        options: structuredClone(options),
      };
      const key = JSON.stringify(call);
      const known = this.calls.get(key);
      if (known) known.count++;
      else this.calls.set(key, { ...call, count: 1 });
    }
    const t0 = performance.now();
    try {
      return await this.inner.attend(segments, query, options);
    } finally {
      this.ms += performance.now() - t0;
    }
  }
}

/**
 * What the statistics of `calls` cost, in ms: each distinct call replayed on `executor` with
 * random entries of the same shape, with and without its statistics, interleaved (median of
 * `repeats` each), the difference times the call's count. Paired on the same inputs, this
 * separates the statistics from the run-to-run drift of a whole prefill, which at 8k tokens
 * is as large as the cost itself.
 */
export async function timeStatistics(
  executor: AttentionExecutor,
  calls: Iterable<StatisticsCall>,
  repeats = 5,
): Promise<number> {
  const random = (n: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 12.9898));
  let total = 0;
  for (const call of calls) {
    const { tokens: T, group, headDim: d } = call;
    const segments: HeadSegment[] = call.lengths.map((n) => ({
      keys: random(n * d),
      values: random(n * d).reverse(),
      positions: Int32Array.from({ length: n }, (_, i) => i),
      length: n,
    }));
    const last = Math.max(...call.lengths);
    const query = {
      q: random(T * call.lengths.length * group * d),
      positions: Int32Array.from({ length: T }, (_, i) => last - T + i),
      group,
      headDim: d,
    };
    const bare: AttendOptions = { ...call.options, stats: undefined };
    const withStats: number[] = [];
    const without: number[] = [];
    for (let r = -1; r < repeats; r++) {
      let t0 = performance.now();
      await executor.attend(segments, query, call.options);
      const a = performance.now() - t0;
      t0 = performance.now();
      await executor.attend(segments, query, bare);
      const b = performance.now() - t0;
      if (r >= 0) { // the first pair builds the sessions
        withStats.push(a);
        without.push(b);
      }
    }
    total += Math.max(0, median(withStats) - median(without)) * call.count;
  }
  return total;
}

/** Options of {@linkcode benchMethods}. */
export interface MethodsBenchOptions {
  /** Method ids, default {@linkcode BENCH_METHODS}. */
  methods?: readonly string[];
  /** The executor the model was loaded with, to split attention time out (optional). */
  attention?: TimedAttention;
  /** Prefill chunk in tokens (default the model's). */
  chunkSize?: number;
  /** Interleaved repeats; medians are kept. Default 3. */
  repeats?: number;
  /** Kept ratio of the eviction. Default 0.3 (spec §9's headline). */
  keptRatio?: number;
  /**
   * Tokens of each method's untimed warm-up run, which builds its sessions. Default 600. (The
   * full prefill warms up at full length: the first long run of a session grows its memory
   * arena, a cost no later run pays.)
   */
  warmupTokens?: number;
  /** onnxruntime threads of the model, for timing hidden projections alone (default cores). */
  threads?: number;
  /** Raw parameters per method id, over what `conformanceParams` gives (gate files). */
  params?: Readonly<Record<string, Record<string, unknown>>>;
  /** Called with one line per finished run (progress on long benches). */
  onRun?: (line: string) => void;
}

/** The methods the bench times by default: the four figures of issue 4 plus EA. */
export const BENCH_METHODS: readonly string[] = [
  "gated",
  "snapkv",
  "h2o",
  "expected-attention",
  "kvzip",
];

/** One run's timings. */
export interface RunTimes {
  prefillMs: number;
  attentionMs: number;
  observeMs: number;
  /** Hidden projections computed in the layer graphs for the scorer, timed alone. */
  projectionMs: number;
  scoreMs: number;
  selectMs: number;
  compactMs: number;
}

/** One method's cost: medians over the repeats, and every run. */
export interface MethodCost extends RunTimes {
  method: string;
  /** The method's default policy, as "per-head", "global", "per-layer+adakv". */
  policy: string;
  /** Median over repeats of (prefill − full prefill + score) / full prefill, paired by repeat. */
  overhead: number;
  /** Median over repeats of attention time minus the paired full prefill's (fused statistics). */
  attentionDeltaMs: number;
  /**
   * The attention statistics alone: the calls that asked for them replayed with and without,
   * paired ({@linkcode timeStatistics}); 0 when none were asked.
   */
  statisticsMs: number;
  /** Whether the scorer asked attention for statistics (then Δattention is its cost). */
  usesStatistics: boolean;
  /**
   * The method's own work over the full prefill: (taps + projections + statistics + score) /
   * full prefill. Less noisy than `overhead`, which also carries the run-to-run drift of the
   * whole prefill.
   */
  directOverhead: number;
  /** (prefill + score) / full prefill, paired medians: what a prefill with the method costs. */
  costRatio: number;
  runs: RunTimes[];
}

/** What {@linkcode benchMethods} measured. */
export interface MethodsBenchResult {
  tokens: number;
  keptRatio: number;
  repeats: number;
  /** The full-cache prefill (no taps): medians and every run. */
  full: { prefillMs: number; attentionMs: number; runs: RunTimes[] };
  methods: MethodCost[];
}

/** Median of a non-empty list. */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function medians(runs: readonly RunTimes[]): RunTimes {
  const pick = (key: keyof RunTimes) => median(runs.map((r) => r[key]));
  return {
    prefillMs: pick("prefillMs"),
    attentionMs: pick("attentionMs"),
    observeMs: pick("observeMs"),
    projectionMs: pick("projectionMs"),
    scoreMs: pick("scoreMs"),
    selectMs: pick("selectMs"),
    compactMs: pick("compactMs"),
  };
}

/** Tap and scoring timers of one run. */
interface Timers {
  observeMs: number;
  /** [tokens, P] of every projection a tap delivered. */
  projections: [number, number][];
  /** Whether stats() ever asked for something. */
  statistics: boolean;
  /** The executor's counter when scoring began (NaN until then). */
  attentionAtScore: number;
}

/** The definition with its scorer's callbacks timed. */
function instrumented(
  def: AnyMethodDefinition,
  timers: Timers,
  attention: TimedAttention | undefined,
): AnyMethodDefinition {
  return {
    ...def,
    createScorer(params, ctx): Scorer {
      const inner = def.createScorer(params, ctx);
      return {
        stats: inner.stats
          ? (layer) => {
            const request = inner.stats!(layer);
            if (request !== undefined) timers.statistics = true;
            return request;
          }
          : undefined,
        hiddenProjection: inner.hiddenProjection
          ? (layer) => inner.hiddenProjection!(layer)
          : undefined,
        observe: inner.observe
          ? async (tap) => {
            if (tap.projected !== undefined) {
              const T = tap.positions.length;
              timers.projections.push([T, tap.projected.length / T]);
            }
            const t0 = performance.now();
            await inner.observe!(tap);
            timers.observeMs += performance.now() - t0;
          }
          : undefined,
        score(request) {
          timers.attentionAtScore = attention?.ms ?? NaN;
          return inner.score(request);
        },
        onEvict: inner.onEvict ? (layer, keep) => inner.onEvict!(layer, keep) : undefined,
      };
    },
  };
}

function policyName(def: AnyMethodDefinition): string {
  return `${def.policy.policy}${def.policy.safeguard ? "+adakv" : ""}`;
}

/** One full-cache prefill of `ids`. */
async function fullRun(
  model: Model<KvStore>,
  ids: Int32Array,
  o: MethodsBenchOptions,
): Promise<RunTimes> {
  const attentionBefore = o.attention?.ms ?? 0;
  const cache = model.createCache();
  const t0 = performance.now();
  await model.prefill(ids, cache, { chunkSize: o.chunkSize });
  const prefillMs = performance.now() - t0;
  cache.release();
  return {
    prefillMs,
    attentionMs: (o.attention?.ms ?? NaN) - attentionBefore,
    observeMs: 0,
    projectionMs: 0,
    scoreMs: 0,
    selectMs: 0,
    compactMs: 0,
  };
}

/** Milliseconds of x [T, D] · W [D, P] alone, per shape (median of 9 after 2 warm-ups). */
class ProjectionTimer {
  readonly #hidden: number;
  readonly #threads: number;
  readonly #ms = new Map<string, number>();

  constructor(hidden: number, threads: number) {
    this.#hidden = hidden;
    this.#threads = threads;
  }

  /** Summed time of the projections of one run. */
  async total(shapes: readonly [number, number][]): Promise<number> {
    let ms = 0;
    for (const [T, P] of shapes) ms += await this.#time(T, P);
    return ms;
  }

  async #time(T: number, P: number): Promise<number> {
    const key = `${T}x${P}`;
    const known = this.#ms.get(key);
    if (known !== undefined) return known;
    const D = this.#hidden;
    const g = new GraphBuilder("projection");
    const x = g.input("x", "float32", ["T", D]);
    const w = g.input("w", "float32", [D, "P"]);
    const y = hiddenProjectionNode(g, x, w);
    g.output(y, { name: "y", dataType: "float32", shape: ["T", "P"] });
    const session = await createSession(g.build(), { name: "projection", threads: this.#threads });
    try {
      const feeds = {
        x: tensorF32(new Float32Array(T * D).fill(0.5), [T, D]),
        w: tensorF32(new Float32Array(D * P).fill(0.25), [D, P]),
      };
      const { medianMs } = await latencyMs(() => session.run(feeds), {
        iterations: 9,
        warmup: 2,
      });
      this.#ms.set(key, medianMs);
      return medianMs;
    } finally {
      await session.release();
    }
  }
}

/** One prefill with eviction by `def` (instrumented) at the bench's kept ratio. */
async function methodRun(
  model: Model<KvStore>,
  ids: Int32Array,
  o: MethodsBenchOptions & {
    def: AnyMethodDefinition;
    raw: Record<string, unknown>;
    projections: ProjectionTimer;
    statistics: Set<string>;
  },
): Promise<RunTimes> {
  const timers: Timers = {
    observeMs: 0,
    projections: [],
    statistics: false,
    attentionAtScore: NaN,
  };
  const attentionBefore = o.attention?.ms ?? 0;
  const r = await prefillWithEviction(model, { prefix: new Int32Array(0), context: ids }, {
    method: instrumented(o.def, timers, o.attention),
    params: o.raw,
    keptRatio: o.keptRatio ?? 0.3,
    chunkSize: o.chunkSize,
  });
  r.cache.release();
  const times: RunTimes = {
    prefillMs: r.prefillMs,
    attentionMs: timers.attentionAtScore - attentionBefore,
    observeMs: timers.observeMs,
    projectionMs: await o.projections.total(timers.projections),
    scoreMs: r.scoreMs,
    selectMs: r.report.selectMs,
    compactMs: r.report.compactMs,
  };
  if (timers.statistics) o.statistics.add(o.def.id);
  return times;
}

/**
 * Time every method against the full-cache prefill of `ids`, interleaved and repeated. Methods
 * that need model-specific files (Fast KVzip's gates) get them from `conformanceParams`
 * (random gates of the model's shape).
 */
export async function benchMethods(
  model: Model<KvStore>,
  ids: Int32Array,
  options: MethodsBenchOptions = {},
): Promise<MethodsBenchResult> {
  const repeats = options.repeats ?? 3;
  const projections = new ProjectionTimer(
    model.config.hiddenSize,
    options.threads ?? navigator.hardwareConcurrency,
  );
  const statistics = new Set<string>();
  const defs = (options.methods ?? BENCH_METHODS).map((id) => getMethod(id));
  const params = new Map<string, Record<string, unknown>>();
  for (const def of defs) {
    const fixture = (await def.conformanceParams?.(model)) ?? {};
    params.set(def.id, { ...fixture, ...options.params?.[def.id] });
  }
  // Warm-up: every session (attention variants with statistics, gates, scoring graphs).
  const warm = ids.subarray(0, Math.min(ids.length, options.warmupTokens ?? 600));
  await fullRun(model, ids, options);
  for (const def of defs) {
    await methodRun(model, warm, {
      ...options,
      def,
      raw: params.get(def.id)!,
      projections,
      statistics,
    });
  }
  const fullRuns: RunTimes[] = [];
  const methodRuns = new Map<string, RunTimes[]>(defs.map((d) => [d.id, []]));
  const statisticsCalls = new Map<string, StatisticsCall[]>();
  const attention = options.attention;
  for (let r = 0; r < repeats; r++) {
    const full = await fullRun(model, ids, options);
    fullRuns.push(full);
    options.onRun?.(`full prefill ${full.prefillMs.toFixed(0)} ms (run ${r + 1}/${repeats})`);
    for (const def of defs) {
      if (attention && r === 0) {
        attention.calls.clear();
        attention.recording = true;
      }
      const run = await methodRun(model, ids, {
        ...options,
        def,
        raw: params.get(def.id)!,
        projections,
        statistics,
      });
      if (attention && r === 0) {
        attention.recording = false;
        statisticsCalls.set(def.id, [...attention.calls.values()]);
      }
      methodRuns.get(def.id)!.push(run);
      options.onRun?.(
        `${def.id}: prefill ${run.prefillMs.toFixed(0)} ms, score ${
          run.scoreMs.toFixed(0)
        } ms (run ${r + 1}/${repeats})`,
      );
    }
  }
  const statisticsMs = new Map<string, number>();
  for (const def of defs) {
    const calls = statisticsCalls.get(def.id) ?? [];
    statisticsMs.set(def.id, attention ? await timeStatistics(attention.inner, calls) : NaN);
  }
  const full = medians(fullRuns);
  return {
    tokens: ids.length,
    keptRatio: options.keptRatio ?? 0.3,
    repeats,
    full: { prefillMs: full.prefillMs, attentionMs: full.attentionMs, runs: fullRuns },
    methods: defs.map((def) => {
      const runs = methodRuns.get(def.id)!;
      const m = medians(runs);
      const paired = (f: (run: RunTimes, full: RunTimes) => number) =>
        median(runs.map((run, r) => f(run, fullRuns[r])));
      const attentionDeltaMs = paired((run, f) => run.attentionMs - f.attentionMs);
      return {
        method: def.id,
        policy: policyName(def),
        ...m,
        overhead: paired((run, f) => (run.prefillMs - f.prefillMs + run.scoreMs) / f.prefillMs),
        attentionDeltaMs,
        statisticsMs: statisticsMs.get(def.id)!,
        usesStatistics: statistics.has(def.id),
        directOverhead: (m.observeMs + m.projectionMs +
          (statistics.has(def.id) ? statisticsMs.get(def.id)! : 0) + m.scoreMs) / full.prefillMs,
        costRatio: paired((run, f) => (run.prefillMs + run.scoreMs) / f.prefillMs),
        runs,
      };
    }),
  };
}
