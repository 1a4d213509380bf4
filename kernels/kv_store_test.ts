import { assert, assertAlmostEquals, assertEquals, assertThrows } from "../tests/assert.ts";
import {
  type AttendOptions,
  type AttentionExecutor,
  CpuKvStore,
  referenceAttention,
  type StatsRequest,
  swapLeadingAxes,
} from "./kv_store.ts";
import { OrtAttention } from "./attention_ort.ts";
import { seededRandom } from "./random.ts";

/** Naive attention over explicit key lists: builds every probability row in full. */
function naive(
  keys: number[][][], // [kvHead][entry][d]
  values: number[][][],
  kPos: number[][],
  q: Float32Array,
  qPos: Int32Array,
  group: number,
  d: number,
  opts: AttendOptions,
) {
  const H = keys.length;
  const T = qPos.length;
  const out = new Float64Array(T * H * group * d);
  const probs: number[][][][] = []; // [h][g][t][j]
  for (let h = 0; h < H; h++) {
    probs.push([]);
    for (let g = 0; g < group; g++) {
      probs[h].push([]);
      for (let t = 0; t < T; t++) {
        const head = h * group + g;
        const logits = keys[h].map((k, j) => {
          const visible = kPos[h][j] <= qPos[t] &&
            (opts.window == null || qPos[t] - kPos[h][j] < opts.window);
          if (!visible) return -Infinity;
          let s = 0;
          for (let i = 0; i < d; i++) s += q[(t * H * group + head) * d + i] * k[i];
          s *= opts.scale;
          return opts.softcap ? Math.tanh(s / opts.softcap) * opts.softcap : s;
        });
        const m = Math.max(...logits);
        const e = logits.map((x) => (x === -Infinity ? 0 : Math.exp(x - m)));
        const z = e.reduce((a, b) => a + b, 0);
        const p = e.map((x) => x / z);
        probs[h][g].push(p);
        for (let i = 0; i < d; i++) {
          let acc = 0;
          for (let j = 0; j < p.length; j++) acc += p[j] * values[h][j][i];
          out[(t * H * group + head) * d + i] = acc;
        }
      }
    }
  }
  return { out, probs };
}

function randn(rand: () => number, n: number): Float32Array {
  return Float32Array.from({ length: n }, () => rand() * 2 - 1);
}

interface Case {
  name: string;
  kvHeads: number;
  group: number;
  d: number;
  prior: number;
  chunk: number;
  evict: boolean;
  window?: number;
  softcap?: number;
  gqa: "mean" | "max";
  /** Ask for no statistics (a plain decode step takes its own path in onnxruntime). */
  noStats?: boolean;
}

const cases: Case[] = [
  {
    name: "GQA 3, chunk after 11 stored",
    kvHeads: 2,
    group: 3,
    d: 6,
    prior: 11,
    chunk: 5,
    evict: false,
    gqa: "mean",
  },
  {
    name: "ragged heads after eviction",
    kvHeads: 3,
    group: 2,
    d: 4,
    prior: 13,
    chunk: 4,
    evict: true,
    gqa: "max",
  },
  {
    name: "single decode query",
    kvHeads: 2,
    group: 2,
    d: 8,
    prior: 9,
    chunk: 1,
    evict: true,
    gqa: "mean",
  },
  {
    name: "first chunk, nothing stored",
    kvHeads: 1,
    group: 4,
    d: 4,
    prior: 0,
    chunk: 7,
    evict: false,
    gqa: "mean",
  },
  {
    name: "sliding window and softcap",
    kvHeads: 2,
    group: 2,
    d: 4,
    prior: 10,
    chunk: 6,
    evict: false,
    window: 4,
    softcap: 5,
    gqa: "max",
  },
  {
    name: "decode step without statistics, soft-capped, after eviction",
    kvHeads: 3,
    group: 2,
    d: 8,
    prior: 12,
    chunk: 1,
    evict: true,
    softcap: 2,
    gqa: "mean",
    noStats: true,
  },
  {
    name: "decode step in a sliding-window layer, GQA 3 max",
    kvHeads: 2,
    group: 3,
    d: 4,
    prior: 12,
    chunk: 1,
    evict: true,
    window: 5,
    gqa: "max",
  },
  {
    // Both heads hold ≥ 2 × DECODE_BLOCK entries after eviction (2501 and 3335), so
    // onnxruntime takes the blocked products with a tail of another length in each head.
    name: "long decode after eviction, blocked product",
    kvHeads: 2,
    group: 2,
    d: 8,
    prior: 5000,
    chunk: 1,
    evict: true,
    gqa: "mean",
  },
  {
    // 2047 stored entries and the step's own: two whole blocks, the second one the tail.
    name: "decode over exactly two blocks, blocked product",
    kvHeads: 2,
    group: 2,
    d: 8,
    prior: 2047,
    chunk: 1,
    evict: false,
    gqa: "mean",
  },
  {
    name: "long decode in a sliding-window layer, blocked product",
    kvHeads: 1,
    group: 2,
    d: 8,
    prior: 2600,
    chunk: 1,
    evict: false,
    window: 2100,
    gqa: "mean",
  },
  {
    name: "long decode, soft-capped, GQA 3 max, blocked product",
    kvHeads: 1,
    group: 3,
    d: 4,
    prior: 2 * 1024 + 1023,
    chunk: 1,
    evict: false,
    softcap: 3,
    gqa: "max",
  },
  {
    // 1500 and 2000 entries of 128 floats: past the compact form's 512 KiB of values per head,
    // short of the blocked product's 2048 entries in every head, so p · v runs row by row.
    name: "decode over 1500 and 2000 entries after eviction, row form",
    kvHeads: 2,
    group: 2,
    d: 128,
    prior: 3000,
    chunk: 1,
    evict: true,
    gqa: "max",
  },
  {
    name: "decode step without grouping (group 1)",
    kvHeads: 2,
    group: 1,
    d: 4,
    prior: 7,
    chunk: 1,
    evict: false,
    gqa: "max",
  },
];

const executors: [string, AttentionExecutor][] = [["reference", referenceAttention], [
  "onnxruntime",
  new OrtAttention(),
]];

for (const c of cases) {
  for (const [executorName, executor] of executors) {
    Deno.test(`attend matches a naive reference: ${c.name} (${executorName})`, async () => {
      const rand = seededRandom(17);
      const H = c.kvHeads;
      const kv = new CpuKvStore({ numLayers: 1, numKvHeads: H, group: c.group, headDim: c.d }, {
        executor,
      });
      const keys: number[][][] = Array.from({ length: H }, () => []);
      const values: number[][][] = Array.from({ length: H }, () => []);
      const kPos: number[][] = Array.from({ length: H }, () => []);
      const push = (k: Float32Array, v: Float32Array, pos: Int32Array) => {
        kv.append(0, k, v, pos);
        for (let t = 0; t < pos.length; t++) {
          for (let h = 0; h < H; h++) {
            const o = (t * H + h) * c.d;
            keys[h].push(Array.from(k.subarray(o, o + c.d)));
            values[h].push(Array.from(v.subarray(o, o + c.d)));
            kPos[h].push(pos[t]);
          }
        }
      };
      if (c.prior > 0) {
        push(
          randn(rand, c.prior * H * c.d),
          randn(rand, c.prior * H * c.d),
          Int32Array.from({ length: c.prior }, (_, i) => i),
        );
      }
      if (c.evict) {
        // Different survivors per head: head h keeps entries whose index % (h + 2) != 1.
        const keep = Array.from(
          { length: H },
          (_, h) => Int32Array.from([...Array(c.prior).keys()].filter((j) => j % (h + 2) !== 1)),
        );
        kv.evict(0, keep);
        for (let h = 0; h < H; h++) {
          keys[h] = [...keep[h]].map((j) => keys[h][j]);
          values[h] = [...keep[h]].map((j) => values[h][j]);
          kPos[h] = [...keep[h]].map((j) => kPos[h][j]);
        }
        assertEquals([...kv.lengths(0)], keys.map((k) => k.length));
      }
      const qPos = Int32Array.from({ length: c.chunk }, (_, i) => c.prior + i);
      push(randn(rand, c.chunk * H * c.d), randn(rand, c.chunk * H * c.d), qPos);
      const q = randn(rand, c.chunk * H * c.group * c.d);
      const w = Math.min(3, c.chunk);
      const stats: StatsRequest = {
        columnSum: true,
        columnMax: true,
        lastWindowMean: 3,
        lastRow: true,
        gqa: c.gqa,
      };
      const opts: AttendOptions = {
        scale: 0.7,
        window: c.window ?? null,
        softcap: c.softcap ?? null,
        stats: c.noStats ? undefined : stats,
      };
      const got = await kv.attend(0, q, qPos, opts);
      const want = naive(keys, values, kPos, q, qPos, c.group, c.d, opts);
      for (let i = 0; i < want.out.length; i++) {
        assertAlmostEquals(got.output[i], want.out[i], 1e-5);
      }
      // The same call with head-major queries gives the head-major output and the same stats.
      const heads = { a: c.chunk, b: H * c.group, d: c.d };
      const byHead = await kv.attend(0, swapLeadingAxes(q, heads), qPos, {
        ...opts,
        layout: "head",
      });
      const back = swapLeadingAxes(byHead.output, { a: heads.b, b: heads.a, d: c.d });
      for (let i = 0; i < want.out.length; i++) assertAlmostEquals(back[i], got.output[i], 1e-6);
      assertEquals(byHead.stats, got.stats);
      if (c.noStats) {
        assertEquals(got.stats, null);
        return;
      }
      assert(got.stats !== null);
      for (let h = 0; h < H; h++) {
        const n = keys[h].length;
        const reduce = (f: (p: number[][]) => number[]) => {
          const perG = probsOf(h).map(f);
          return Array.from(
            { length: n },
            (_, j) =>
              c.gqa === "max"
                ? Math.max(...perG.map((r) => r[j]))
                : perG.reduce((a, r) => a + r[j], 0) / c.group,
          );
        };
        const probsOf = (hh: number) => want.probs[hh];
        const colSum = reduce((rows) => rows[0].map((_, j) => rows.reduce((a, r) => a + r[j], 0)));
        const colMax = reduce((rows) => rows[0].map((_, j) => Math.max(...rows.map((r) => r[j]))));
        const win = reduce((rows) =>
          rows[0].map((_, j) => rows.slice(-w).reduce((a, r) => a + r[j], 0) / w)
        );
        const last = reduce((rows) => rows[rows.length - 1]);
        const s = got.stats[h];
        for (let j = 0; j < n; j++) {
          assertAlmostEquals(s.columnSum![j], colSum[j], 1e-5);
          assertAlmostEquals(s.columnMax![j], colMax[j], 1e-6);
          assertAlmostEquals(s.lastWindowMean![j], win[j], 1e-6);
          assertAlmostEquals(s.lastRow![j], last[j], 1e-6);
        }
      }
    });
  }
}

Deno.test("evict keeps exactly the listed entries and frees memory", () => {
  const kv = new CpuKvStore({ numLayers: 2, numKvHeads: 2, group: 1, headDim: 4 });
  const n = 300;
  const k = Float32Array.from({ length: n * 2 * 4 }, (_, i) => i);
  kv.append(0, k, k, Int32Array.from({ length: n }, (_, i) => i));
  kv.append(1, k, k, Int32Array.from({ length: n }, (_, i) => i));
  const before = kv.bytesHeld();
  kv.evict(0, [Int32Array.of(0, 5, 6, 7, 299), Int32Array.of(3)]);
  assertEquals([...kv.segment(0, 0).positions], [0, 5, 6, 7, 299]);
  assertEquals([...kv.segment(0, 1).positions], [3]);
  // Head 1's entry 3 holds the key written for token 3, head 1.
  assertEquals([...kv.segment(0, 1).keys], [28, 29, 30, 31]);
  assertEquals([...kv.segment(0, 0).values.subarray(4, 8)], [40, 41, 42, 43]);
  assert(kv.bytesHeld() < before, "eviction must release storage");
  assertEquals(kv.bytesUsed(), (5 + 1 + 2 * n) * (4 * 8 + 4));
  assertEquals(kv.nominal(), 4 * n * (4 * 8 + 4));
  assertThrows(() => kv.evict(0, [Int32Array.of(2, 1), Int32Array.of(0)]), Error, "increasing");
  assertThrows(() => kv.evict(0, [Int32Array.of(9), Int32Array.of(0)]), Error, "within [0, 5)");
});

Deno.test("a head-major append stores exactly what the token-major one does", () => {
  const rand = seededRandom(17);
  const shape = { numLayers: 2, numKvHeads: 3, group: 2, headDim: 5, slidingWindows: [null, 4] };
  const byToken = new CpuKvStore(shape);
  const byHead = new CpuKvStore(shape);
  const dims = { a: 0, b: shape.numKvHeads, d: shape.headDim };
  for (const [start, T] of [[0, 7], [7, 1], [8, 3]]) {
    const positions = Int32Array.from({ length: T }, (_, i) => start + i);
    for (let l = 0; l < shape.numLayers; l++) {
      const k = randn(rand, T * 3 * 5);
      const v = randn(rand, T * 3 * 5);
      byToken.append(l, k, v, positions);
      const heads = { ...dims, a: T };
      byHead.append(l, swapLeadingAxes(k, heads), swapLeadingAxes(v, heads), positions, "head");
    }
  }
  for (let l = 0; l < shape.numLayers; l++) {
    for (let h = 0; h < shape.numKvHeads; h++) {
      const a = byToken.segment(l, h);
      const b = byHead.segment(l, h);
      assertEquals(b.length, a.length, `layer ${l} head ${h}: length`);
      assertEquals(b.positions.subarray(0, b.length), a.positions.subarray(0, a.length));
      assertEquals(b.keys.subarray(0, 5 * b.length), a.keys.subarray(0, 5 * a.length));
      assertEquals(b.values.subarray(0, 5 * b.length), a.values.subarray(0, 5 * a.length));
    }
  }
});

Deno.test("reserve sizes global layers for a prefill, which then appends into that room", () => {
  const kv = new CpuKvStore({
    numLayers: 2,
    numKvHeads: 2,
    group: 1,
    headDim: 4,
    slidingWindows: [null, 8],
  });
  const perEntry = 4 * 8 + 4;
  kv.reserve(600);
  // Layer 0: 600 entries per head; the sliding layer 1 is left to grow within its window.
  assertEquals(kv.bytesHeld(), 2 * 600 * perEntry);
  const room = kv.segment(0, 0).keys.buffer;
  const k = new Float32Array(300 * 2 * 4).fill(1);
  for (const start of [0, 300]) {
    const positions = Int32Array.from({ length: 300 }, (_, i) => start + i);
    kv.append(0, k, k, positions);
  }
  const segment = kv.segment(0, 0);
  assertEquals(kv.bytesUsed(), 2 * 600 * perEntry, "the prompt fills the room exactly");
  assert(segment.keys.buffer === room, "appends went into the reserved storage");
  assertEquals(segment.positions[599], 599);
  // A short addition to a full segment grows it as an append would (by max(128, 1/8)), not
  // to the exact size, so prefilling a question after the context does not copy every time.
  kv.reserve(30);
  assertEquals(kv.bytesHeld(), 2 * (600 + 128) * perEntry);
});

Deno.test("mark/restore truncates back to the compressed context", () => {
  const rand = seededRandom(3);
  const kv = new CpuKvStore({ numLayers: 1, numKvHeads: 2, group: 1, headDim: 2 });
  kv.append(
    0,
    randn(rand, 20 * 4),
    randn(rand, 20 * 4),
    Int32Array.from({ length: 20 }, (_, i) => i),
  );
  kv.evict(0, [Int32Array.of(1, 4, 9), Int32Array.of(0, 19)]);
  const snapshot = [0, 1].map((h) => structuredClone(kv.segment(0, h)));
  const mark = kv.mark();
  kv.append(
    0,
    randn(rand, 5 * 4),
    randn(rand, 5 * 4),
    Int32Array.from({ length: 5 }, (_, i) => 20 + i),
  );
  assertEquals([...kv.lengths(0)], [8, 7]);
  kv.restore(mark);
  for (const h of [0, 1]) assertEquals(kv.segment(0, h), snapshot[h]);
  assertEquals(kv.nextPosition, 20);
  // Evicting marked entries makes the mark unrestorable, loudly.
  kv.append(0, randn(rand, 4), randn(rand, 4), Int32Array.of(20));
  kv.evict(0, [Int32Array.of(0, 3), Int32Array.of(0, 1, 2)]);
  assertThrows(() => kv.restore(mark), Error, "cannot be restored");
});

Deno.test("sliding layers drop entries no query can see, but never past a mark", () => {
  const kv = new CpuKvStore({
    numLayers: 1,
    numKvHeads: 1,
    group: 1,
    headDim: 2,
    slidingWindows: [8],
  });
  const one = (p: number) =>
    kv.append(0, Float32Array.of(p, p), Float32Array.of(p, p), Int32Array.of(p));
  for (let p = 0; p < 40; p++) one(p);
  const held = kv.lengths(0)[0];
  assert(held >= 8 && held < 16, `window 8 should hold between 8 and 15 entries, held ${held}`);
  assertEquals(kv.segment(0, 0).positions.at(-1), 39);
  const mark = kv.mark();
  // The mark holds exactly what a query at position 40 can see: 33..39 (window 8 with itself).
  assertEquals([...kv.segment(0, 0).positions], [33, 34, 35, 36, 37, 38, 39]);
  for (let query = 0; query < 2; query++) {
    for (let p = 40; p < 80; p++) {
      one(p);
      // Entries appended after the mark are still trimmed: memory stays bounded while decoding.
      assert(kv.lengths(0)[0] <= 7 + 8 + 15, `held ${kv.lengths(0)[0]} entries at position ${p}`);
    }
    kv.restore(mark);
    assertEquals([...kv.segment(0, 0).positions], [33, 34, 35, 36, 37, 38, 39]);
  }
  assertEquals(kv.nominal(), 8 * (2 * 8 + 4));
});

Deno.test("a sliding layer trims in place while decoding, and shrinks after a long chunk", () => {
  const shape = { numLayers: 2, numKvHeads: 1, group: 1, headDim: 2, slidingWindows: [null, 16] };
  const kv = new CpuKvStore(shape);
  const append = (start: number, T: number) => {
    const data = new Float32Array(2 * T).fill(start);
    const positions = Int32Array.from({ length: T }, (_, i) => start + i);
    for (let l = 0; l < 2; l++) kv.append(l, data, data, positions);
  };
  append(0, 40);
  const storage = kv.segment(1, 0).keys.buffer;
  for (let p = 40; p < 400; p++) {
    append(p, 1);
    const seg = kv.segment(1, 0);
    assert(seg.keys.buffer === storage, `the sliding layer reallocated at position ${p}`);
    assert(seg.length <= 16 + 64, `held ${seg.length} entries at position ${p}`);
    assertEquals(seg.positions[seg.length - 1], p);
    assertEquals(seg.keys[2 * (seg.length - 1)], p, "the newest entry's key moved with it");
    assertEquals(seg.positions[seg.length - 16], p - 15, "the window stays whole");
  }
  // A 2000-token chunk passes through the window: its storage is then reallocated to fit.
  append(400, 2000);
  kv.trimWindows();
  const seg = kv.segment(1, 0);
  assertEquals(seg.length, 15, "what a query at position 2400 sees");
  const capacity = seg.positions.buffer.byteLength / 4;
  assert(capacity < 2 * (16 + 128), `capacity ${capacity} after the trim`);
  assertEquals([...seg.positions.subarray(0, 2)], [2385, 2386]);
});

Deno.test("clone is an independent copy", () => {
  const kv = new CpuKvStore({ numLayers: 1, numKvHeads: 2, group: 1, headDim: 2 });
  kv.append(0, Float32Array.of(1, 2, 3, 4), Float32Array.of(5, 6, 7, 8), Int32Array.of(0));
  const copy = kv.clone();
  kv.evict(0, [Int32Array.of(), Int32Array.of(0)]);
  assertEquals([...copy.lengths(0)], [1, 1]);
  assertEquals([...copy.segment(0, 1).keys], [3, 4]);
  assertEquals(copy.nextPosition, 1);
  copy.append(0, Float32Array.of(0, 0, 0, 0), Float32Array.of(0, 0, 0, 0), Int32Array.of(1));
  assertEquals([...kv.lengths(0)], [0, 1]);
});

Deno.test("OrtAttention with a profile prefix writes its sessions' node timings on release", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const executor = new OrtAttention({ profile: `${dir}/attn` });
    const kv = new CpuKvStore({ numLayers: 1, numKvHeads: 2, group: 2, headDim: 4 }, { executor });
    const k = Float32Array.from({ length: 3 * 2 * 4 }, (_, i) => Math.sin(i));
    kv.append(0, k, k.map((x) => 2 * x), Int32Array.of(0, 1, 2));
    await kv.attend(0, new Float32Array(2 * 2 * 4).fill(0.5), Int32Array.of(3), { scale: 0.5 });
    await executor.release();
    const files = [...Deno.readDirSync(dir)].map((e) => e.name);
    assertEquals(files.length, 1, `profiles written: ${files.join(", ")}`);
    const events = JSON.parse(await Deno.readTextFile(`${dir}/${files[0]}`)) as { cat?: string }[];
    assert(events.some((e) => e.cat === "Node"), "the profile holds node events");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
