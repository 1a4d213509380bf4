/**
 * The phases on a tiny model: score once / prune many equals one run per ratio, chunked
 * prefill's decision ranges and window rule (spec §3.2–3.3), the decode trigger schedule
 * (§4.2), `full` never evicting, and bad input.
 */

import { assert, assertEquals, assertRejects } from "../tests/assert.ts";
import { InputError } from "../errors.ts";
import { Model } from "../engine/model.ts";
import { type KvStore, referenceAttention } from "../kernels/kv_store.ts";
import "./mod.ts";
import {
  chunkedPrefillWithEviction,
  generateWithEviction,
  prefillAtRatios,
  prefillWithEviction,
} from "./phases.ts";
import { getMethod } from "./registry.ts";
import { adjustWindow } from "./select.ts";
import { withTinyModel } from "./testing.ts";
import type { AnyMethodDefinition, ScoreRequest } from "./types.ts";

const prompt = {
  prefix: Int32Array.of(1, 2, 3),
  context: Int32Array.from({ length: 40 }, (_, i) => (i * 13 + 5) % 250),
};

/** The method with its score calls recorded. */
function counted(id: string): { def: AnyMethodDefinition; calls: ScoreRequest[] } {
  const base = getMethod(id);
  const calls: ScoreRequest[] = [];
  return {
    calls,
    def: {
      ...base,
      createScorer(params, ctx) {
        const inner = base.createScorer(params, ctx);
        return {
          stats: inner.stats?.bind(inner),
          observe: inner.observe?.bind(inner),
          score: (request) => {
            calls.push(request);
            return inner.score(request);
          },
        };
      },
    },
  };
}

function heldPositions(
  cache: {
    shape: { numLayers: number; numKvHeads: number };
    segment: (l: number, h: number) => { positions: Int32Array };
  },
): number[][][] {
  return Array.from(
    { length: cache.shape.numLayers },
    (_, l) =>
      Array.from({ length: cache.shape.numKvHeads }, (_, h) => [...cache.segment(l, h).positions]),
  );
}

async function withModel(fn: (model: Model) => Promise<void>): Promise<void> {
  await withTinyModel({ arch: "qwen3", seed: 31 }, async (dir) => {
    await fn(await Model.load(dir, { attention: referenceAttention, threads: 1 }));
  });
}

Deno.test("prefillAtRatios: one prefill, one scoring (ratio-independent), same caches as separate runs", async () => {
  await withModel(async (model) => {
    for (const id of ["knorm", "h2o", "snapkv"]) {
      const { def, calls } = counted(id);
      const ratios = [1, 0.75, 0.5, 0.2];
      const seen: number[][][][] = [];
      const scoring: number[] = [];
      const out = await prefillAtRatios(model, prompt, {
        method: def,
        ratios,
        window: 2,
        onRatio: ({ cache, report, keptRatio, scoreMs }) => {
          seen.push(heldPositions(cache));
          scoring.push(scoreMs);
          assertEquals(report.keptRatioAsked, keptRatio);
        },
      });
      assertEquals(calls.length, def.ratioIndependent ? 1 : 3, `${id}: score calls`);
      // Every evicting ratio reports the scoring behind it; shared scores, the one scoring.
      assertEquals(scoring[0], 0, "ratio 1 evicts nothing");
      if (def.ratioIndependent) {
        assert(scoring.slice(1).every((ms) => ms === out.scoreMs), `${id}: ${scoring}`);
      }
      assert(out.prefillMs > 0);
      for (const [i, keptRatio] of ratios.entries()) {
        const alone = await prefillWithEviction(model, prompt, {
          method: id,
          keptRatio,
          window: 2,
        });
        assertEquals(seen[i], heldPositions(alone.cache), `${id} at ${keptRatio}`);
      }
    }
  });
});

Deno.test("chunked prefill: ranges [s, c − w), then one chunk each, the window never decided", async () => {
  await withModel(async (model) => {
    const { def, calls } = counted("knorm");
    const r = await chunkedPrefillWithEviction(model, prompt, {
      method: def,
      keptRatio: 0.5,
      chunk: 16,
      window: 4,
      windowRatio: null,
    });
    assertEquals(calls.map((c) => [c.range.start, c.range.end]), [[3, 12], [12, 28], [28, 39]]);
    assertEquals(calls.map((c) => [c.observed.start, c.observed.end]), [[0, 16], [16, 32], [
      32,
      43,
    ]]);
    assertEquals(r.evictions.length, 3);
    assertEquals(r.report.window, 4);
    // Short context (n < chunk): w = ⌊0.02·n⌋ (spec §3.2).
    const long = {
      prefix: new Int32Array(0),
      context: Int32Array.from({ length: 150 }, (_, i) => i % 200),
    };
    const short = await chunkedPrefillWithEviction(model, long, {
      method: "knorm",
      keptRatio: 0.5,
      chunk: 1000,
    });
    assertEquals(short.report.window, 3);
    const spec = await chunkedPrefillWithEviction(model, long, {
      method: "knorm",
      keptRatio: 0.5,
      chunk: 1000,
      window: 100,
      windowRatio: null,
    });
    assertEquals(spec.report.window, 75, "r·n < w: the window shrinks to ⌊r·n⌋, nothing else kept");
    assertEquals(spec.report.keptRatioAchieved, 0.5);
  });
});

/** Context entries each (layer, KV head) holds: those at or after the prefix. */
function contextHeld(cache: KvStore, contextStart: number): number[][] {
  return Array.from(
    { length: cache.shape.numLayers },
    (_, l) =>
      Array.from(
        { length: cache.shape.numKvHeads },
        (_, h) => cache.positions(l, h).filter((p) => p >= contextStart).length,
      ),
  );
}

/** What a kept ratio r = N / n keeps of one head, r·n floored after the window adjustment. */
function keptThroughRatio(N: number, n: number, window: number): number {
  const { window: w, populationRatio } = adjustWindow(N / n, n, window);
  return w + Math.floor((n - w) * populationRatio);
}

Deno.test("token budgets: N context tokens per head kept as N under every policy, where N / n · n floats below N", async () => {
  // The pairs that a ratio floors to N − 1: the test must meet some of them.
  const window = 2;
  const lengths = [22, 23, 43];
  const lossy = lengths.flatMap((n) =>
    Array.from({ length: n - 1 }, (_, i) => i + 1).filter((N) =>
      keptThroughRatio(N, n, 0) < N || keptThroughRatio(N, n, window) < N
    ).map((N) => [n, N])
  );
  assert(lossy.length >= 4, `lossy pairs: ${JSON.stringify(lossy)}`);
  await withModel(async (model) => {
    const { numLayers, numKvHeads } = model.config;
    for (const n of lengths) {
      const sample = {
        prefix: prompt.prefix,
        context: Int32Array.from({ length: n }, (_, i) => (i * 17 + 3) % 250),
      };
      const all = Array.from({ length: n + 1 }, (_, i) => i + 1); // 1 … n + 1
      for (const policy of ["per-head", "per-layer", "global"] as const) {
        for (const w of [0, window]) {
          const kept: number[][][] = [];
          const asked: [number, number | null][] = [];
          await prefillAtRatios(model, sample, {
            method: "knorm",
            policy: { policy },
            keptTokens: all,
            window: w,
            onRatio: ({ cache, keptRatio, keptTokens, report }) => {
              kept.push(contextHeld(cache, prompt.prefix.length));
              asked.push([keptRatio, keptTokens]);
              assertEquals(report.keptRatioAsked, keptRatio);
            },
          });
          assertEquals(asked, all.map((N) => [N >= n ? 1 : N / n, N]));
          all.forEach((N, i) => {
            const label = `${policy}, n ${n}, N ${N}, window ${w}`;
            const want = Math.min(N, n);
            if (policy === "per-head") {
              assert(kept[i].flat().every((held) => held === want), `${label}: ${kept[i]}`);
            } else if (policy === "per-layer") {
              for (const row of kept[i]) {
                assertEquals(row.reduce((a, b) => a + b), want * numKvHeads, label);
              }
            } else {
              assertEquals(kept[i].flat().reduce((a, b) => a + b), want * numKvHeads * numLayers);
            }
          });
        }
      }
      // One eviction, and chunks whose shares add up to N − w.
      for (const N of [1, 7, 13, n - 1]) {
        const once = await prefillWithEviction(model, sample, {
          method: "knorm",
          keptTokens: N,
          window,
        });
        const chunked = await chunkedPrefillWithEviction(model, sample, {
          method: "knorm",
          keptTokens: N,
          chunk: 8,
          window,
          windowRatio: null,
        });
        assert(chunked.evictions.length > 2, `${chunked.evictions.length} chunks`);
        for (const r of [once, chunked]) {
          const held = contextHeld(r.cache, prompt.prefix.length).flat();
          assert(held.every((x) => x === N), `n ${n}, N ${N}: ${held}`);
          assertEquals(r.report.keptRatioAsked, N / n);
        }
      }
    }
    const bad: [() => Promise<unknown>, string][] = [
      [() => prefillWithEviction(model, prompt, { method: "knorm" }), "got neither"],
      [
        () => prefillWithEviction(model, prompt, { method: "knorm", keptRatio: 1, keptTokens: 1 }),
        "got both",
      ],
      [
        () => chunkedPrefillWithEviction(model, prompt, { method: "knorm", keptTokens: 2.5 }),
        "kept tokens: expected a positive integer, got 2.5",
      ],
      [
        () =>
          prefillAtRatios(model, prompt, { method: "knorm", keptTokens: [0], onRatio: () => {} }),
        "kept tokens: expected a positive integer, got 0",
      ],
    ];
    for (const [run, message] of bad) await assertRejects(run, InputError, message);
  });
});

Deno.test("decode: triggers after the prefill and after forwards at multiples of the interval", async () => {
  await withModel(async (model) => {
    const ids = Int32Array.from({ length: 13 }, (_, i) => 20 + i);
    const { def, calls } = counted("streamingllm");
    const r = await generateWithEviction(model, ids, {
      maxNewTokens: 20,
      eosTokenIds: [],
      eviction: { method: def, entriesPerHead: 12, interval: 8 },
    });
    // Decode forwards at positions 13..31: 16 and 24 trigger, plus the prefill.
    assertEquals(r.triggers, 3);
    assertEquals(calls.map((c) => c.observed.end), [13, 17, 25]);
    for (let l = 0; l < model.config.numLayers; l++) {
      for (const p of heldPositions(r.cache)[l]) {
        // 12 after the last eviction at 25, then positions 25..31 appended.
        assertEquals(p.length, 12 + 7);
        assertEquals(p.slice(0, 4), [0, 1, 2, 3], "StreamingLLM: the sinks");
      }
    }
    // protectBefore: a compressed context under a query is never touched.
    const cache = model.createCache();
    await model.prefill(ids, cache);
    const r2 = await generateWithEviction(model, Int32Array.of(5, 6, 7), {
      cache,
      maxNewTokens: 30,
      eosTokenIds: [],
      eviction: { method: "knorm", entriesPerHead: 10, interval: 8 },
    });
    for (const p of heldPositions(r2.cache).flat()) {
      assertEquals(p.slice(0, 13), Array.from({ length: 13 }, (_, i) => i));
    }
    assert(r2.evictions.length > 0);
  });
});

Deno.test("full never evicts; bad input is an InputError naming the field", async () => {
  await withModel(async (model) => {
    const r = await prefillWithEviction(model, prompt, { method: "full", keptRatio: 0.3 });
    assertEquals(r.report.keptRatioAchieved, 1);
    assertEquals(r.report.evicted, 0);
    const bad: [() => Promise<unknown>, string][] = [
      [() => prefillWithEviction(model, prompt, { method: "knorm", keptRatio: 0 }), "kept ratio"],
      [() => prefillWithEviction(model, prompt, { method: "knorm", keptRatio: 1.5 }), "kept ratio"],
      [
        () => prefillWithEviction(model, prompt, { method: "knorm", keptRatio: 0.5, window: -1 }),
        "window",
      ],
      [
        () => prefillWithEviction(model, prompt, { method: "knrm", keptRatio: 0.5 }),
        'did you mean "knorm"',
      ],
      [
        () =>
          prefillWithEviction(model, prompt, {
            method: "snapkv",
            keptRatio: 0.5,
            params: { window: 0 },
          }),
        'parameter "window"',
      ],
      [
        () => chunkedPrefillWithEviction(model, prompt, { method: "kvzip", keptRatio: 0.5 }),
        'does not act in phase "chunked-prefill"',
      ],
      [
        () =>
          generateWithEviction(model, prompt.context, {
            maxNewTokens: 2,
            eviction: { method: "knorm", entriesPerHead: 0 },
          }),
        "entries per head",
      ],
      [
        () => prefillAtRatios(model, prompt, { method: "knorm", ratios: [], onRatio: () => {} }),
        "ratios",
      ],
    ];
    for (const [run, message] of bad) await assertRejects(run, InputError, message);
  });
});

Deno.test("every phase checks a plugin's score grid and names the plugin on one line", async () => {
  await withModel(async (model) => {
    const knorm = getMethod("knorm");
    /** knorm under another id, its grid broken by `breakGrid`. */
    const broken = (breakGrid: (grid: Float32Array[][]) => unknown): AnyMethodDefinition => ({
      ...knorm,
      id: "my-norm",
      createScorer(params, ctx) {
        const inner = knorm.createScorer(params, ctx);
        return {
          ...inner,
          score: async (request) => breakGrid(await inner.score(request)) as Float32Array[][],
        };
      },
    });
    const short = broken((grid) => grid.map((row) => row.map((s) => s.subarray(1))));
    const plain = broken((grid) => grid.map((row) => row.map((s) => [...s])));
    const runs: [() => Promise<unknown>, string][] = [
      [
        () => prefillWithEviction(model, prompt, { method: short, keptRatio: 0.5 }),
        "method my-norm: scores of layer 0 head 0 have 42 entries; the store holds 43",
      ],
      [
        () => chunkedPrefillWithEviction(model, prompt, { method: plain, keptRatio: 0.5 }),
        "method my-norm: scores of layer 0 head 0 are an Array of",
      ],
      [
        () => prefillAtRatios(model, prompt, { method: short, ratios: [0.5], onRatio: () => {} }),
        "method my-norm: scores of layer 0 head 0 have 42 entries",
      ],
      [
        () =>
          generateWithEviction(model, prompt.context, {
            maxNewTokens: 4,
            eviction: { method: broken(() => undefined), entriesPerHead: 8 },
          }),
        "method my-norm: scores are undefined",
      ],
    ];
    for (const [run, message] of runs) {
      const e = await assertRejects(run, InputError, message);
      assert(!e.message.includes("\n"), e.message);
    }
  });
});
