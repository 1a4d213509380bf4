/**
 * The method conformance suite: what every registered method must do, checked on tiny random
 * models of every architecture, for one backend at a time: the CPU engine with a given
 * attention executor, or the WebGPU engine. `conformance_test.ts` runs it for the reference
 * and onnxruntime executors and, on a small budget, for WebGPU.
 *
 * For each method and each phase it declares:
 * - every selection policy (and the AdaKV safeguard) gives keep-sets that an independent
 *   oracle of spec §3.4/§4.3 accepts: exact counts per policy, threshold property, ties only
 *   where the spec allows them;
 * - protections hold: the prefix, the sinks, the lagging window (prefill) and the recent window
 *   (decode) are all still in the store;
 * - kept ratio 1.0 (and a decode budget never reached) gives bit-identical logits to the full
 *   cache;
 * - the decode budget invariant: after every eviction the population is B per head (per-head)
 *   or B·L·H (global, up to ties at the threshold);
 * - nothing leaks between samples: B after A gives what B gives alone.
 *
 * Methods that need model-specific artefacts (gate weights) provide `conformanceParams`,
 * which creates them for the tiny model and returns the parameters to use.
 *
 * @module
 */

import { assert, assertEquals } from "../tests/assert.ts";
import { generate } from "../engine/generate.ts";
import { Model } from "../engine/model.ts";
import { makeRandomModel, type TinyArch } from "../engine/random_model.ts";
import type { AttentionExecutor, KvStore } from "../kernels/kv_store.ts";
import {
  chunkedPrefillWithEviction,
  generateWithEviction,
  type PrefillEvictionResult,
  prefillWithEviction,
  type PromptParts,
} from "./phases.ts";
import { listMethods } from "./registry.ts";
import { adjustWindow, evictableLayers } from "./select.ts";
import type {
  AnyMethodDefinition,
  PolicySpec,
  ScoreGrid,
  ScoreRequest,
  SelectionPolicy,
} from "./types.ts";

/** A backend under test: how to load a tiny model, and how to register a test for it. */
export interface ConformanceBackend {
  /** Shown in test names ("reference attention", "webgpu"). */
  name: string;
  /** Load the tiny model written to `dir`. */
  load(dir: string): Promise<Model<KvStore>>;
  /** Release what `load` made (device memory). Default: nothing. */
  unload?(model: Model<KvStore>): void;
  /**
   * Register one test (e.g. through `gpuTest`, which ignores it without an adapter and fails
   * under CI=true). Default: `Deno.test` without the resource sanitizer.
   */
  register?(name: string, fn: (t: Deno.TestContext) => Promise<void>): void;
}

/**
 * The CPU engine with one attention executor (single-threaded ORT sessions).
 *
 * @example
 * ```ts
 * defineConformanceTests(cpuBackend("reference", () => referenceAttention));
 * ```
 */
export function cpuBackend(name: string, create: () => AttentionExecutor): ConformanceBackend {
  return {
    name: `${name} attention`,
    load: (dir) => Model.load(dir, { attention: create(), threads: 1 }),
  };
}

/** Options of {@linkcode defineConformanceTests}. */
export interface ConformanceOptions {
  /** Architectures to run (default all four). */
  archs?: readonly TinyArch[];
  /**
   * The architecture on which every policy is tried (default "qwen3"); others use the
   * method's default. Null: the default policy everywhere (selection is host code that the
   * CPU runs already cover, so a slow backend can skip the policy matrix).
   */
  policyArch?: TinyArch | null;
  /** Method ids (default: every registered method, at the time the tests run). */
  methods?: readonly string[];
}

const ARCHS: readonly TinyArch[] = ["llama", "qwen2", "qwen3", "gemma3"];
const POLICIES: readonly PolicySpec[] = [
  { policy: "per-head" },
  { policy: "per-layer" },
  { policy: "global" },
  { policy: "global", safeguard: 0.2 },
  { policy: "per-layer", safeguard: 0.2 },
];

/** The prompt the suite uses: 5 prefix tokens, 40 context tokens. */
export function conformancePrompt(seed: number): PromptParts {
  let x = seed * 7919 + 13;
  const next = () => {
    x = (x * 1103515245 + 12345) % 2147483648;
    return x % 250;
  };
  return {
    prefix: Int32Array.from({ length: 5 }, next),
    context: Int32Array.from({ length: 40 }, next),
  };
}

/** One score call seen by the spy: the request, the grid and the store before/after. */
interface SpyEvent {
  request: ScoreRequest;
  scores: ScoreGrid;
  before: Int32Array[][];
  after: Int32Array[][];
}

function positionsOf(cache: KvStore): Int32Array[][] {
  const out: Int32Array[][] = [];
  for (let l = 0; l < cache.shape.numLayers; l++) {
    const row: Int32Array[] = [];
    for (let h = 0; h < cache.shape.numKvHeads; h++) {
      row.push(cache.positions(l, h).slice());
    }
    out.push(row);
  }
  return out;
}

/** Wrap a method so every score call and eviction is recorded. */
function spy(def: AnyMethodDefinition): { def: AnyMethodDefinition; events: SpyEvent[] } {
  const events: SpyEvent[] = [];
  const wrapped: AnyMethodDefinition = {
    ...def,
    createScorer(params, ctx) {
      const inner = def.createScorer(params, ctx);
      return {
        stats: inner.stats ? (layer) => inner.stats!(layer) : undefined,
        observe: inner.observe ? (tap) => inner.observe!(tap) : undefined,
        async score(request) {
          const scores = await inner.score(request);
          const before = positionsOf(ctx.cache);
          events.push({
            request,
            scores: scores.map((row) => row.map((s) => s.slice())),
            before,
            after: before.map((row) => row.map((p) => p.slice())),
          });
          return scores;
        },
        onEvict(layer, keep) {
          const last = events[events.length - 1];
          for (let h = 0; h < keep.length; h++) {
            last.after[layer][h] = ctx.cache.positions(layer, h).slice();
          }
          inner.onEvict?.(layer, keep);
        },
      };
    },
  };
  return { def: wrapped, events };
}

/** The settings an eviction was made under, for the oracle. */
interface EvictionSettings {
  policy: PolicySpec;
  budget: { ratio: number } | { entriesPerHead: number };
  sinks: number;
  recent: number;
  layerWeights: Float64Array | null;
}

interface HeadView {
  scores: Float32Array;
  positions: Int32Array;
  kept: Set<number>;
  /** Indices into the head's entries. */
  forced: number[];
  free: number[];
  population: number;
  target: number;
}

/**
 * Check one eviction against spec §3.4/§4.3 written out independently of select.ts: forced
 * entries kept, outside-range entries kept, and the policy's counts and threshold property.
 */
function checkEviction(e: SpyEvent, layers: number[], s: EvictionSettings, label: string): void {
  const heads: HeadView[][] = [];
  for (const l of layers) {
    const row: HeadView[] = [];
    for (let h = 0; h < e.before[l].length; h++) {
      const positions = e.before[l][h];
      const scores = e.scores[l][h];
      assertEquals(
        scores.length,
        positions.length,
        `${label}: scores align (layer ${l} head ${h})`,
      );
      const kept = new Set(e.after[l][h]);
      const pop: number[] = [];
      positions.forEach((p, i) => {
        if (p >= e.request.range.start && p < e.request.range.end) pop.push(i);
        else assert(kept.has(p), `${label}: position ${p} outside the range was evicted`);
      });
      const recentFrom = pop.length - Math.min(s.recent, pop.length);
      const forced = pop.filter((i, j) => positions[i] < s.sinks || j >= recentFrom);
      const free = pop.filter((i, j) => !(positions[i] < s.sinks || j >= recentFrom));
      for (const i of forced) {
        assert(kept.has(positions[i]), `${label}: forced position ${positions[i]} was evicted`);
      }
      const m = pop.length;
      const w = s.layerWeights?.[l];
      let target: number;
      if ("ratio" in s.budget) {
        const r = s.budget.ratio;
        target = r >= 1 ? m : w === undefined ? Math.floor(m * r) : Math.round(m * r * w);
        target = Math.min(m, Math.max(0, target));
      } else {
        target = w === undefined
          ? s.budget.entriesPerHead
          : Math.round(s.budget.entriesPerHead * w);
      }
      row.push({ scores, positions, kept, forced, free, population: m, target });
    }
    heads.push(row);
  }
  const byRank = (v: HeadView) => (a: number, b: number) =>
    v.scores[b] - v.scores[a] || v.positions[b] - v.positions[a];
  const alpha = s.policy.safeguard ?? 0;
  if (s.policy.policy === "per-head") {
    for (const v of heads.flat()) {
      const want = Math.max(0, Math.min(v.free.length, v.target - v.forced.length));
      const expected = [...v.free].sort(byRank(v)).slice(0, want).map((i) => v.positions[i]);
      const got = v.free.filter((i) => v.kept.has(v.positions[i])).map((i) => v.positions[i]);
      assertEquals(
        got.sort((a, b) => a - b),
        expected.sort((a, b) => a - b),
        `${label}: per-head top-k`,
      );
    }
    return;
  }
  const groups = s.policy.policy === "per-layer" ? heads : [heads.flat()];
  for (const group of groups) {
    let forcedCount = 0;
    const free: { score: number; kept: boolean }[] = [];
    for (const v of group) {
      forcedCount += v.forced.length;
      let guard: number[] = [];
      if (alpha > 0) {
        const a = Math.floor(Math.min(v.target, v.population) * alpha);
        guard = [...v.free].sort(byRank(v)).slice(0, a);
        for (const i of guard) {
          assert(v.kept.has(v.positions[i]), `${label}: the AdaKV safeguard kept a head's best`);
        }
      }
      forcedCount += guard.length;
      const guarded = new Set(guard);
      for (const i of v.free) {
        if (!guarded.has(i)) free.push({ score: v.scores[i], kept: v.kept.has(v.positions[i]) });
      }
    }
    const kept = free.filter((f) => f.kept);
    const evicted = free.filter((f) => !f.kept);
    if (kept.length > 0 && evicted.length > 0) {
      const minKept = Math.min(...kept.map((f) => f.score));
      const maxEvicted = Math.max(...evicted.map((f) => f.score));
      assert(minKept >= maxEvicted, `${label}: a kept score is below an evicted one`);
    }
    const m = group.reduce((a, v) => a + v.population, 0);
    if ("ratio" in s.budget) {
      const K = s.budget.ratio >= 1 ? m : Math.max(Math.floor(m * s.budget.ratio) - 1, 0);
      const need = Math.max(0, K - forcedCount);
      assert(kept.length <= need, `${label}: kept ${kept.length} > ${need} under the strict rule`);
      if (kept.length < need && evicted.length > 0) {
        const maxEvicted = Math.max(...evicted.map((f) => f.score));
        const atOrAbove = free.filter((f) => f.score >= maxEvicted).length;
        assert(atOrAbove > need, `${label}: kept ${kept.length} < ${need} without a tie`);
        assert(kept.every((f) => f.score > maxEvicted), `${label}: strict threshold`);
      }
    } else {
      const target = group.reduce((a, v) => a + v.target, 0);
      const remove = Math.max(0, m - target);
      if (remove >= free.length) {
        assertEquals(kept.length, 0, `${label}: every free entry goes`);
      } else {
        assert(evicted.length <= remove, `${label}: evicted ${evicted.length} > ${remove}`);
        if (evicted.length < remove && kept.length > 0) {
          const minKept = Math.min(...kept.map((f) => f.score));
          const atOrBelow = free.filter((f) => f.score <= minKept).length;
          assert(
            atOrBelow > remove,
            `${label}: evicted ${evicted.length} < ${remove} without a tie`,
          );
        }
      }
    }
  }
}

/** Every prefix, sink and window position is still held by every decided head. */
function checkProtected(cache: KvStore, positions: number[], label: string): void {
  for (const l of evictableLayers(cache)) {
    for (let h = 0; h < cache.shape.numKvHeads; h++) {
      const held = new Set(cache.positions(l, h));
      for (const p of positions) assert(held.has(p), `${label}: protected position ${p} is gone`);
    }
  }
}

async function loadTiny(arch: TinyArch, backend: ConformanceBackend, seed: number): Promise<{
  model: Model<KvStore>;
  dir: string;
}> {
  const dir = await Deno.makeTempDir({ prefix: `evictbench_conformance_${arch}_` });
  await makeRandomModel(dir, { arch, seed });
  return { model: await backend.load(dir), dir };
}

function range(a: number, b: number): number[] {
  return Array.from({ length: Math.max(0, b - a) }, (_, i) => a + i);
}

/** The keep-sets and the next-token logits a cache gives (for leak and identity checks). */
async function fingerprint(model: Model<KvStore>, cache: KvStore): Promise<{
  positions: Int32Array[][];
  logits: Float32Array;
}> {
  const positions = positionsOf(cache);
  const logits = await model.forward(Int32Array.of(7, 11), cache, { logits: "all" });
  return { positions, logits };
}

async function checkPrefill(
  model: Model<KvStore>,
  def: AnyMethodDefinition,
  o: {
    policies: readonly (PolicySpec | undefined)[];
    label: string;
    params: Record<string, unknown>;
  },
): Promise<void> {
  const prompt = conformancePrompt(1);
  const s = prompt.prefix.length;
  const n = prompt.context.length;
  const sinks = s + 2; // two context positions are sinks
  const oneShotWindow = 3;
  for (const policy of o.policies) {
    const policyName = policy ? `${policy.policy}${policy.safeguard ? "+adakv" : ""}` : "default";
    const effective = policy ?? def.policy;
    if (def.phases.includes("prefill")) {
      const label = `${o.label} prefill ${policyName}`;
      const { def: spied, events } = spy(def);
      const r = 0.5;
      const result = await prefillWithEviction(model, prompt, {
        method: spied,
        params: o.params,
        keptRatio: r,
        policy,
        window: oneShotWindow,
        sinks,
      });
      const { window, populationRatio } = adjustWindow(r, n, oneShotWindow);
      assertEquals(events.length, 1, `${label}: one score call`);
      assertEquals(events[0].request.range, { start: s, end: s + n - window }, `${label}: range`);
      assertEquals(result.report.populationRatio, populationRatio, `${label}: r′ (spec §3.2)`);
      checkEviction(events[0], evictableLayers(result.cache), {
        policy: effective,
        budget: { ratio: populationRatio },
        sinks,
        recent: 0,
        layerWeights: weightsFor(def, o.params, result, n - window, populationRatio),
      }, label);
      checkProtected(result.cache, [...range(0, sinks), ...range(s + n - window, s + n)], label);
      checkAchieved(result, label);
    }
    if (def.phases.includes("chunked-prefill")) {
      const label = `${o.label} chunked-prefill ${policyName}`;
      const { def: spied, events } = spy(def);
      const result = await chunkedPrefillWithEviction(model, prompt, {
        method: spied,
        params: o.params,
        keptRatio: 0.4,
        policy,
        chunk: 16,
        chunkSize: 8,
        window: 4,
        windowRatio: null,
        sinks,
      });
      const { populationRatio } = adjustWindow(0.4, n, 4);
      assert(events.length >= 2, `${label}: an eviction per chunk`);
      let start = s;
      for (const e of events) {
        assertEquals(e.request.range.start, start, `${label}: decisions are contiguous and final`);
        start = e.request.range.end;
        const m = e.request.range.end - e.request.range.start;
        checkEviction(e, evictableLayers(result.cache), {
          policy: effective,
          budget: { ratio: populationRatio },
          sinks,
          recent: 0,
          layerWeights: weightsFor(def, o.params, result, m, populationRatio),
        }, label);
      }
      assertEquals(start, s + n - 4, `${label}: everything but the window was decided`);
      checkProtected(result.cache, [...range(0, sinks), ...range(s + n - 4, s + n)], label);
      checkAchieved(result, label);
    }
  }
}

function weightsFor(
  def: AnyMethodDefinition,
  params: Record<string, unknown>,
  result: PrefillEvictionResult<KvStore>,
  population: number,
  ratio: number,
): Float64Array | null {
  if (def.layerBudgets === undefined) return null;
  const layers = evictableLayers(result.cache);
  const compact = def.layerBudgets(def.params.parse(params), {
    layers: layers.length,
    population,
    kept: population * ratio,
  });
  if (compact === null) return null;
  const out = new Float64Array(result.cache.shape.numLayers).fill(1);
  layers.forEach((l, i) => out[l] = compact[i]);
  return out;
}

function checkAchieved(result: PrefillEvictionResult<KvStore>, label: string): void {
  const cache = result.cache;
  const layers = evictableLayers(cache);
  const ctxStart = 5;
  const ctxEnd = 45;
  let held = 0;
  for (const l of layers) {
    for (let h = 0; h < cache.shape.numKvHeads; h++) {
      for (const p of cache.positions(l, h)) if (p >= ctxStart && p < ctxEnd) held++;
    }
  }
  const want = held / ((ctxEnd - ctxStart) * layers.length * cache.shape.numKvHeads);
  assertEquals(result.report.keptRatioAchieved, want, `${label}: achieved ratio`);
  assertEquals(result.report.bytesUsed, cache.bytesUsed(), `${label}: bytes used`);
}

async function checkDecode(
  model: Model<KvStore>,
  def: AnyMethodDefinition,
  o: {
    policies: readonly (PolicySpec | undefined)[];
    label: string;
    params: Record<string, unknown>;
  },
): Promise<void> {
  if (!def.phases.includes("decode")) return;
  const prompt = conformancePrompt(2);
  const ids = Int32Array.from([...prompt.prefix, ...prompt.context]);
  for (const policy of o.policies) {
    const effective = policy ?? def.decode!.policy;
    const label = `${o.label} decode ${policy ? effective.policy : "default"}`;
    const { def: spied, events } = spy(def);
    // A budget above the forced entries (4 sinks + the window), exceeded at least 3 times.
    const B = def.decode!.window + 4 + 12;
    const result = await generateWithEviction(model, ids, {
      maxNewTokens: Math.max(24, B - ids.length + 3 * 8 + 1),
      eosTokenIds: [],
      eviction: { method: spied, params: o.params, entriesPerHead: B, interval: 8, policy },
    });
    const window = def.decode!.window;
    assert(events.length >= 3, `${label}: evictions at the prefill and every 8 tokens`);
    const layers = evictableLayers(result.cache);
    for (const e of events) {
      checkEviction(e, layers, {
        policy: effective,
        budget: { entriesPerHead: B },
        sinks: 4,
        recent: window,
        layerWeights: null,
      }, label);
      // The budget invariant right after the eviction (spec §4.3).
      const counts = layers.map((l) => e.after[l].map((p) => p.length));
      const total = counts.flat().reduce((a, b) => a + b, 0);
      if (effective.policy === "per-head") {
        for (const c of counts.flat()) assertEquals(c, B, `${label}: B entries per head`);
      } else {
        assert(total >= B * layers.length * counts[0].length, `${label}: Σ ≥ B·L·H`);
      }
      for (const l of layers) {
        e.after[l].forEach((p, h) => {
          for (let q = 0; q < 4; q++) assert(p.includes(q), `${label}: sink ${q} kept`);
          const before = e.before[l][h];
          for (const q of before.subarray(Math.max(0, before.length - window))) {
            assert(p.includes(q), `${label}: recent position ${q} kept`);
          }
        });
      }
    }
  }
}

async function checkIdentity(
  model: Model<KvStore>,
  def: AnyMethodDefinition,
  o: { label: string; params: Record<string, unknown> },
): Promise<void> {
  const { label, params } = o;
  const prompt = conformancePrompt(3);
  const ids = Int32Array.from([...prompt.prefix, ...prompt.context]);
  const full = model.createCache();
  const fullLogits = await model.prefill(ids, full);
  const want = await fingerprint(model, full);
  if (def.phases.length === 0 || def.phases.includes("prefill")) {
    const r = await prefillWithEviction(model, prompt, { method: def, params, keptRatio: 1 });
    assertEquals(r.logits, fullLogits, `${label}: ratio 1.0 prefill logits are bit-identical`);
    assertEquals(
      await fingerprint(model, r.cache),
      want,
      `${label}: ratio 1.0 keeps the full cache`,
    );
  }
  if (def.phases.includes("chunked-prefill")) {
    const sliced = model.createCache();
    for (let i = 0; i < ids.length; i += 16) await model.prefill(ids.subarray(i, i + 16), sliced);
    const r = await chunkedPrefillWithEviction(model, prompt, {
      method: def,
      params,
      keptRatio: 1,
      chunk: 16,
    });
    assertEquals(
      await fingerprint(model, r.cache),
      await fingerprint(model, sliced),
      `${label}: ratio 1.0 chunked prefill is bit-identical`,
    );
  }
  if (def.phases.includes("decode")) {
    const plain = model.createCache();
    const a = await generate(model, plain, ids, { maxNewTokens: 12, eosTokenIds: [] });
    const b = await generateWithEviction(model, ids, {
      maxNewTokens: 12,
      eosTokenIds: [],
      eviction: { method: def, params, entriesPerHead: 10_000, interval: 4 },
    });
    assertEquals(b.tokens, a.tokens, `${label}: an unreached decode budget changes nothing`);
    assertEquals(b.evictions.length, 0, `${label}: no eviction under budget`);
    assertEquals(await fingerprint(model, b.cache), await fingerprint(model, plain), label);
  }
}

async function checkNoLeak(
  model: Model<KvStore>,
  def: AnyMethodDefinition,
  o: { label: string; params: Record<string, unknown> },
): Promise<void> {
  const { label, params } = o;
  const a = conformancePrompt(4);
  const b = conformancePrompt(5);
  const phase = def.phases.includes("prefill") || def.phases.length === 0
    ? "prefill"
    : def.phases[0];
  const run = async (prompt: PromptParts) => {
    if (phase === "prefill") {
      const r = await prefillWithEviction(model, prompt, {
        method: def,
        params,
        keptRatio: 0.5,
        seed: 1,
      });
      return await fingerprint(model, r.cache);
    }
    if (phase === "chunked-prefill") {
      const r = await chunkedPrefillWithEviction(model, prompt, {
        method: def,
        params,
        keptRatio: 0.5,
        chunk: 16,
        seed: 1,
      });
      return await fingerprint(model, r.cache);
    }
    const r = await generateWithEviction(
      model,
      Int32Array.from([...prompt.prefix, ...prompt.context]),
      {
        maxNewTokens: 16,
        eosTokenIds: [],
        eviction: { method: def, params, entriesPerHead: 20, interval: 8, seed: 1 },
      },
    );
    return await fingerprint(model, r.cache);
  };
  const alone = await run(b);
  await run(a);
  assertEquals(await run(b), alone, `${label}: B after A equals B alone`);
}

/**
 * Define one Deno test per (method, architecture) for `backend`. Methods are read from the
 * registry when the tests run, so methods registered later are covered too.
 */
export function defineConformanceTests(
  backend: ConformanceBackend,
  options: ConformanceOptions = {},
): void {
  const archs = options.archs ?? ARCHS;
  const policyArch = options.policyArch === undefined ? "qwen3" : options.policyArch;
  const register = backend.register ??
    ((name: string, fn: (t: Deno.TestContext) => Promise<void>) =>
      Deno.test({ name, sanitizeResources: false, fn }));
  for (const [i, arch] of archs.entries()) {
    const name = `conformance (${backend.name}, ${arch}): ${
      options.methods?.join(", ") ?? "every registered method"
    }`;
    register(name, async (t) => {
      const { model, dir } = await loadTiny(arch, backend, 90 + i);
      try {
        const methods = options.methods === undefined
          ? listMethods()
          : listMethods().filter((m) => options.methods!.includes(m.id));
        for (const def of methods) {
          const label = `${def.id} (${arch}, ${backend.name})`;
          const all = arch === policyArch;
          await t.step(def.id, async () => {
            const params = (await def.conformanceParams?.(model)) ?? {};
            await checkPrefill(model, def, {
              policies: all ? [undefined, ...POLICIES] : [undefined],
              label,
              params,
            });
            await checkDecode(model, def, {
              policies: all
                ? [
                  undefined,
                  ...(["per-head", "global"] as SelectionPolicy[]).map((p) => ({ policy: p })),
                ]
                : [undefined],
              label,
              params,
            });
            await checkIdentity(model, def, { label, params });
            await checkNoLeak(model, def, { label, params });
          });
        }
      } finally {
        backend.unload?.(model);
        await Deno.remove(dir, { recursive: true });
      }
    });
  }
}
