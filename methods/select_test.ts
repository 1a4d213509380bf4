/**
 * The shared selector on hand examples: each policy's counts and thresholds (spec §3.4, §4.3),
 * ties, the AdaKV safeguard, protections (range, sinks, recent window), the window
 * adjustment r′ (§3.2), layer weights, the k-th value selection and the report.
 */

import { assert, assertAlmostEquals, assertEquals, assertThrows } from "../tests/assert.ts";
import { InputError } from "../errors.ts";
import { CpuKvStore } from "../kernels/kv_store.ts";
import {
  adjustWindow,
  evictWithScores,
  kthSmallest,
  selectKeepSets,
  type SelectOptions,
} from "./select.ts";
import type { ScoreGrid } from "./types.ts";

/** A store of `layers` × `heads` heads holding positions [0, n) (headDim 2, keys = position). */
function store(
  layers: number,
  heads: number,
  n: number,
  slidingWindows?: (number | null)[],
): CpuKvStore {
  const kv = new CpuKvStore({
    numLayers: layers,
    numKvHeads: heads,
    group: 1,
    headDim: 2,
    slidingWindows,
  });
  const pos = Int32Array.from({ length: n }, (_, i) => i);
  const k = Float32Array.from({ length: n * heads * 2 }, (_, i) => Math.floor(i / (heads * 2)));
  for (let l = 0; l < layers; l++) kv.append(l, k, k.slice(), pos);
  return kv;
}

function grid(rows: number[][][]): ScoreGrid {
  return rows.map((layer) => layer.map((h) => Float32Array.from(h)));
}

/** Kept positions per [layer][head] after select (null keep = everything). */
function keptPositions(kv: CpuKvStore, scores: ScoreGrid, options: SelectOptions): number[][][] {
  const { keep } = selectKeepSets(kv, scores, options);
  const out: number[][][] = [];
  for (let l = 0; l < kv.shape.numLayers; l++) {
    const row: number[][] = [];
    for (let h = 0; h < kv.shape.numKvHeads; h++) {
      const pos = kv.segment(l, h).positions;
      row.push(keep[l] === null ? [...pos] : [...keep[l]![h]].map((i) => pos[i]));
    }
    out.push(row);
  }
  return out;
}

const ALL = { start: 0, end: 1000 };

Deno.test("adjustWindow: spec §3.2 example and the window-only case", () => {
  const a = adjustWindow(0.3, 100_000, 4096);
  assertEquals(a.window, 4096);
  assertAlmostEquals(a.populationRatio, (30_000 - 4096) / (100_000 - 4096), 1e-12);
  assertAlmostEquals(a.populationRatio, 0.2701, 1e-4);
  // r·n < w: the window shrinks to ⌊r·n⌋ and nothing else is kept.
  assertEquals(adjustWindow(0.3, 1000, 400), { window: 300, populationRatio: 0 });
  assertEquals(adjustWindow(1, 1000, 400), { window: 400, populationRatio: 1 });
  assertEquals(adjustWindow(0.5, 100, 0), { window: 0, populationRatio: 0.5 });
});

Deno.test("per-head: exact top ⌊m·r′⌋ per head; ties go to the more recent entry", () => {
  const kv = store(1, 2, 6);
  const scores = grid([[[5, 1, 4, 2, 3, 0], [1, 1, 1, 1, 1, 1]]]);
  const kept = keptPositions(kv, scores, {
    budget: { ratio: 0.5 },
    policy: { policy: "per-head" },
    range: ALL,
  });
  assertEquals(kept[0][0], [0, 2, 4]);
  assertEquals(kept[0][1], [3, 4, 5], "all tied: the three most recent");
});

Deno.test("global: strict threshold at ⌊N·r′⌋ − 1 (spec §3.4 pair), ties at τ all dropped", () => {
  const kv = store(2, 1, 4);
  // N = 8, r′ = 0.5: idx = 3, τ = 4th largest = 5; keep > 5 → 3 entries.
  const scores = grid([[[8, 1, 5, 7]], [[2, 6, 3, 4]]]);
  const kept = keptPositions(kv, scores, {
    budget: { ratio: 0.5 },
    policy: { policy: "global" },
    range: ALL,
  });
  assertEquals(kept, [[[0, 3]], [[1]]]);
  // Ties at τ: four entries of 5 straddle the cut; all of them go.
  const tied = grid([[[9, 5, 5, 1]], [[5, 5, 0, 0]]]);
  const keptTied = keptPositions(kv, tied, {
    budget: { ratio: 0.5 },
    policy: { policy: "global" },
    range: ALL,
  });
  assertEquals(keptTied, [[[0]], [[]]]);
  // r′ ≥ 1 keeps everything; tiny r′ keeps nothing (idx = max(−1, 0) = 0 → keep > max).
  assertEquals(
    keptPositions(kv, scores, { budget: { ratio: 1 }, policy: { policy: "global" }, range: ALL }),
    [[[0, 1, 2, 3]], [[0, 1, 2, 3]]],
  );
  assertEquals(
    keptPositions(kv, scores, { budget: { ratio: 0.1 }, policy: { policy: "global" }, range: ALL }),
    [[[]], [[]]],
  );
});

Deno.test("per-layer: the pair rule inside each layer; budgets move between heads, not layers", () => {
  const kv = store(2, 2, 3);
  // Per layer N = 6, r′ = 0.5 → idx 2: keep the top 2 of each layer.
  const scores = grid([[[9, 8, 7], [1, 2, 3]], [[1, 1, 0], [5, 6, 4]]]);
  const kept = keptPositions(kv, scores, {
    budget: { ratio: 0.5 },
    policy: { policy: "per-layer" },
    range: ALL,
  });
  assertEquals(kept, [[[0, 1], []], [[], [0, 1]]]);
});

Deno.test("AdaKV safeguard: every head keeps its top ⌊⌊m·r′⌋·α⌋ before the threshold", () => {
  const kv = store(1, 2, 10);
  const head0 = [100, 99, 98, 97, 96, 95, 94, 93, 92, 91];
  const head1 = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
  const scores = grid([[head0, head1]]);
  const base = { budget: { ratio: 0.5 }, range: ALL } as const;
  // Without: N = 20, keep the top 9 → all from head 0.
  const plain = keptPositions(kv, scores, { ...base, policy: { policy: "per-layer" } });
  assertEquals(plain[0][1], []);
  assertEquals(plain[0][0].length, 9);
  // α = 0.4: ⌊⌊10·0.5⌋·0.4⌋ = 2 per head are forced, then the remaining 9 − 4 = 5 by threshold.
  const guarded = keptPositions(kv, scores, {
    ...base,
    policy: { policy: "per-layer", safeguard: 0.4 },
  });
  assertEquals(guarded[0][1], [8, 9]);
  assertEquals(guarded[0][0], [0, 1, 2, 3, 4, 5, 6]);
});

Deno.test("protections: outside the range kept and uncounted; sinks and the recent window forced", () => {
  const kv = store(1, 1, 10);
  const scores = grid([[[9, 9, 0, 1, 2, 3, 4, 5, 0, 0]]]);
  // Range [2, 8): prefix 0..1 and window 8..9 are kept whatever their scores.
  // Population m = 6, per-head ⌊6·0.5⌋ = 3; position 2 is a sink (sinks = 3) → 2 more by score.
  const kept = keptPositions(kv, scores, {
    budget: { ratio: 0.5 },
    policy: { policy: "per-head" },
    range: { start: 2, end: 8 },
    sinks: 3,
  });
  assertEquals(kept[0][0], [0, 1, 2, 6, 7, 8, 9]);
  // Decode: everything in range, the last 2 entries forced, B = 5 per head.
  const recent = keptPositions(kv, scores, {
    budget: { entriesPerHead: 5 },
    policy: { policy: "per-head" },
    range: ALL,
    sinks: 1,
    recent: 2,
  });
  assertEquals(recent[0][0], [0, 1, 7, 8, 9]);
  // Forced entries beyond the budget are all kept, nothing else.
  const over = keptPositions(kv, scores, {
    budget: { entriesPerHead: 2 },
    policy: { policy: "per-head" },
    range: ALL,
    sinks: 2,
    recent: 2,
  });
  assertEquals(over[0][0], [0, 1, 8, 9]);
});

Deno.test("decode global: remove n − B·L·H with τ = the n_remove-th smallest, keep ≥ τ (ties kept)", () => {
  const kv = store(2, 1, 5);
  const scores = grid([[[5, 1, 2, 3, 4]], [[0, 6, 7, 8, 9]]]);
  // n = 10, B = 3 → keep 6: τ = 4th smallest (0-based) = 4 → keep ≥ 4.
  const kept = keptPositions(kv, scores, {
    budget: { entriesPerHead: 3 },
    policy: { policy: "global" },
    range: ALL,
  });
  assertEquals(kept, [[[0, 4]], [[1, 2, 3, 4]]]);
  const tied = grid([[[5, 2, 2, 2, 2]], [[2, 6, 7, 8, 9]]]);
  const keptTied = keptPositions(kv, tied, {
    budget: { entriesPerHead: 3 },
    policy: { policy: "global" },
    range: ALL,
  });
  // τ = 2 (a tie of five): everything ≥ 2 stays, one more than B·L·H... here all 10.
  assertEquals(keptTied.flat().flat().length, 10);
  // Under budget: nothing goes.
  assertEquals(
    selectKeepSets(kv, scores, {
      budget: { entriesPerHead: 5 },
      policy: { policy: "global" },
      range: ALL,
    }).keep,
    [null, null],
  );
});

Deno.test("per-head layer weights (PyramidKV) scale each layer's budget", () => {
  const kv = store(2, 1, 10);
  const scores = grid([[Array.from({ length: 10 }, (_, i) => i)], [
    Array.from({ length: 10 }, (_, i) => i),
  ]]);
  const kept = keptPositions(kv, scores, {
    budget: { ratio: 0.4 },
    policy: { policy: "per-head" },
    range: ALL,
    layerWeights: Float64Array.of(1.5, 0.5),
  });
  assertEquals(kept[0][0].length, 6);
  assertEquals(kept[1][0].length, 2);
});

Deno.test("sliding-window layers are never decided; bad score grids are a method bug", () => {
  const kv = store(2, 1, 4, [2, null]);
  const scores = grid([[[0, 0, 0, 0]], [[4, 3, 2, 1]]]);
  const { keep } = selectKeepSets(kv, scores, {
    budget: { ratio: 0.5 },
    policy: { policy: "per-head" },
    range: ALL,
  });
  assertEquals(keep[0], null);
  assertEquals([...keep[1]![0]], [0, 1]);
  const refused = (bad: unknown, message: string) => {
    const e = assertThrows(
      () =>
        selectKeepSets(kv, bad as ScoreGrid, {
          budget: { ratio: 0.5 },
          policy: { policy: "global" },
          range: ALL,
          method: "my-norm",
        }),
      InputError,
      message,
    );
    assert(e.message.startsWith("method my-norm: ") && !e.message.includes("\n"), e.message);
  };
  refused(grid([[[0]], [[1, 2]]]), "scores of layer 1 head 0 have 2 entries; the store holds 4");
  refused(grid([[[0]], [[1, NaN, 2, 3]]]), "scored NaN at layer 1 head 0 position 1");
  refused(undefined, "scores are undefined; expected an array of layers");
  refused([[Float32Array.of(0)]], "scores of layer 1 are undefined; expected 1 KV heads");
  refused([[], []], "scores of layer 1 hold 0 heads; expected 1");
  refused([[], [[4, 3, 2, 1]]], "layer 1 head 0 are an Array of 4; expected a Float32Array of 4");
  refused([[], [Float64Array.of(4, 3, 2, 1)]], "are a Float64Array of 4");
  // A NaN in an entry that is always kept (here: a sink) is allowed.
  const sunk = selectKeepSets(kv, grid([[[0]], [[NaN, 3, 2, 1]]]), {
    budget: { ratio: 0.5 },
    policy: { policy: "per-head" },
    range: ALL,
    sinks: 1,
  });
  assertEquals([...sunk.keep[1]![0]], [0, 1]);
});

Deno.test("kthSmallest agrees with a sort: small, quickselect and radix paths, ties, ±0, ±∞", () => {
  let seed = 1;
  const rand = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
  for (const n of [1, 7, 300, 5000, (1 << 20) + 17]) {
    const values = Float32Array.from({ length: n }, () => {
      const u = rand();
      return u < 0.05
        ? 0
        : u < 0.07
        ? -0
        : u < 0.08
        ? Infinity
        : u < 0.09
        ? -Infinity
        : Math.round((u - 0.5) * 200) / 8;
    });
    const sorted = values.slice().sort();
    const parts = [values.subarray(0, Math.floor(n / 3)), values.subarray(Math.floor(n / 3))];
    for (const k of [0, Math.floor(n / 2), n - 1]) {
      const got = kthSmallest(parts, k);
      assert(got === sorted[k], `n=${n} k=${k}: ${got} vs ${sorted[k]}`);
    }
  }
  assertThrows(() => kthSmallest([Float32Array.of(1)], 1), Error, "outside");
});

Deno.test("evictWithScores compacts the store and reports asked vs achieved, entries and bytes", () => {
  const kv = store(2, 2, 10);
  const scores: ScoreGrid = [0, 1].map((l) =>
    [0, 1].map((h) => Float32Array.from({ length: 10 }, (_, i) => (i * 7 + l + h) % 10))
  );
  const evicted: number[] = [];
  const report = evictWithScores(kv, scores, {
    budget: { ratio: 0.5 },
    policy: { policy: "per-head" },
    range: { start: 2, end: 10 },
    context: { start: 2, end: 10 },
    asked: { keptRatio: 0.5, populationRatio: 0.5 },
    onEvict: (layer) => evicted.push(layer),
  });
  assertEquals(evicted, [0, 1]);
  assertEquals(report.entries, [[6, 6], [6, 6]]);
  assertEquals(report.population, 32);
  assertEquals(report.evicted, 16);
  assertEquals(report.keptRatioAchieved, 0.5);
  assertEquals(report.keptRatioAsked, 0.5);
  assertEquals(report.bytesUsed, kv.bytesUsed());
  assertEquals(report.bytesHeld, kv.bytesHeld());
  assertEquals(report.nominalBytes, kv.nominal());
  assert(report.bytesHeld < report.nominalBytes, "compaction returned memory");
});
