/**
 * The GPU store against the CPU store (the reference executor as oracle): attention outputs
 * and every statistic on random inputs with ragged lengths (0, 1 and many entries), GQA,
 * windows, soft-capping, head dims that are not multiples of the workgroup, decode steps long
 * enough to split keys across workgroups; and the same entries, bit for bit, after appends,
 * evictions, window trimming, mark/restore and clone.
 *
 * Tolerances: outputs and statistics within 1e-4 relative to max(|want|, 1e-2 · max|want|)
 * (f32 on the device, f64 accumulation in the reference). Entries are compared exactly.
 */

import { assert, assertEquals, assertThrows } from "../../tests/assert.ts";
import {
  type AttendOptions,
  CpuKvStore,
  type KvStoreShape,
  referenceAttention,
} from "../kv_store.ts";
import { seededRandom } from "../random.ts";
import type { GpuContext } from "./device.ts";
import { GpuKvStore } from "./kv_store.ts";
import { gpuTest, randomArray, relativeError } from "./test_support.ts";

const TOLERANCE = 1e-4;

interface AttentionCase {
  name: string;
  kvHeads: number;
  group: number;
  d: number;
  /** Entries appended before the queries' own. */
  prior: number;
  /** Queries; their keys are appended first unless `appendQueries` is false. */
  chunk: number;
  appendQueries?: boolean;
  /** Keep-set rule applied to the prior entries of head h, or none. */
  evict?: (h: number, j: number) => boolean;
  window?: number;
  softcap?: number;
  gqa: "mean" | "max";
}

const CASES: AttentionCase[] = [
  {
    name: "GQA 3, chunk of 5 after 11",
    kvHeads: 2,
    group: 3,
    d: 6,
    prior: 11,
    chunk: 5,
    gqa: "mean",
  },
  {
    name: "ragged heads: 0, 1 and 9 entries, queries not appended",
    kvHeads: 3,
    group: 2,
    d: 4,
    prior: 13,
    chunk: 2,
    appendQueries: false,
    evict: (h, j) => (h === 0 ? false : h === 1 ? j === 7 : j % 3 !== 1),
    gqa: "max",
  },
  {
    name: "decode step over 700 entries (keys split across workgroups)",
    kvHeads: 2,
    group: 2,
    d: 16,
    prior: 700,
    chunk: 1,
    evict: (h, j) => (j + h) % 5 !== 0,
    gqa: "mean",
  },
  {
    name: "sliding window and softcap",
    kvHeads: 2,
    group: 2,
    d: 4,
    prior: 10,
    chunk: 6,
    window: 4,
    softcap: 5,
    gqa: "max",
  },
  {
    name: "head dim 130, no GQA, first chunk",
    kvHeads: 2,
    group: 1,
    d: 130,
    prior: 0,
    chunk: 7,
    gqa: "mean",
  },
  {
    name: "prefill of 70 queries over 150 entries, head dim 256",
    kvHeads: 1,
    group: 2,
    d: 256,
    prior: 150,
    chunk: 70,
    gqa: "mean",
  },
  {
    name: "decode in a sliding layer over 300 entries",
    kvHeads: 1,
    group: 4,
    d: 8,
    prior: 300,
    chunk: 1,
    window: 200,
    gqa: "max",
  },
];

function compare(actual: Float32Array, expected: Float32Array, what: string): void {
  const err = relativeError(actual, expected);
  assert(err <= TOLERANCE, `${what}: relative error ${err} exceeds ${TOLERANCE}`);
}

for (const c of CASES) {
  gpuTest(`GpuKvStore.attend matches the CPU store: ${c.name}`, async (gpu) => {
    const next = seededRandom(c.prior * 31 + c.chunk * 7 + c.d);
    const shape: KvStoreShape = {
      numLayers: 1,
      numKvHeads: c.kvHeads,
      group: c.group,
      headDim: c.d,
    };
    const cpu = new CpuKvStore(shape, { executor: referenceAttention });
    const dev = new GpuKvStore(gpu, shape);
    const width = c.kvHeads * c.d;
    const append = (count: number, start: number) => {
      const k = randomArray(next, count * width);
      const v = randomArray(next, count * width);
      const pos = Int32Array.from({ length: count }, (_, i) => start + i);
      cpu.append(0, k, v, pos);
      dev.append(0, k, v, pos);
    };
    if (c.prior > 0) append(c.prior, 0);
    if (c.evict) {
      const keep = Array.from(
        { length: c.kvHeads },
        (_, h) => Int32Array.from([...Array(c.prior).keys()].filter((j) => c.evict!(h, j))),
      );
      cpu.evict(0, keep);
      dev.evict(0, keep);
    }
    if (c.appendQueries !== false) append(c.chunk, c.prior);
    const positions = Int32Array.from({ length: c.chunk }, (_, i) => c.prior + i);
    const q = randomArray(next, c.chunk * c.kvHeads * c.group * c.d);
    const options: AttendOptions = {
      scale: 0.9 / Math.sqrt(c.d) * 4,
      window: c.window ?? null,
      softcap: c.softcap ?? null,
      stats: { columnSum: true, columnMax: true, lastWindowMean: 3, lastRow: true, gqa: c.gqa },
    };
    assertEquals(dev.lengths(0), cpu.lengths(0));
    const want = await cpu.attend(0, q, positions, options);
    const got = await dev.attend(0, q, positions, options);
    compare(got.output, want.output, "output");
    assert(got.stats !== null && want.stats !== null);
    for (let h = 0; h < c.kvHeads; h++) {
      for (const name of ["columnSum", "columnMax", "lastWindowMean", "lastRow"] as const) {
        compare(got.stats[h][name]!, want.stats[h][name]!, `head ${h} ${name}`);
      }
    }
    // A request for one statistic returns only that one.
    const one = await dev.attend(0, q, positions, { ...options, stats: { lastRow: true } });
    assertEquals(Object.keys(one.stats![0]), ["lastRow"]);
    const none = await dev.attend(0, q, positions, { ...options, stats: undefined });
    assertEquals(none.stats, null);
    compare(none.output, want.output, "output without statistics");
    dev.clear();
  });
}

/** Both stores' segments: identical lengths, positions, keys and values (bit for bit). */
async function assertSameEntries(cpu: CpuKvStore, dev: GpuKvStore, what: string): Promise<void> {
  const { numLayers, numKvHeads } = cpu.shape;
  for (let l = 0; l < numLayers; l++) {
    assertEquals(dev.lengths(l), cpu.lengths(l), `${what}: layer ${l} lengths`);
    for (let h = 0; h < numKvHeads; h++) {
      const want = cpu.segment(l, h);
      const got = await dev.readSegment(l, h);
      assertEquals(got.positions, want.positions, `${what}: layer ${l} head ${h} positions`);
      assertEquals(dev.positions(l, h), want.positions, `${what}: host mirror ${l}.${h}`);
      assertEquals(bits(got.keys), bits(want.keys), `${what}: layer ${l} head ${h} keys`);
      assertEquals(bits(got.values), bits(want.values), `${what}: layer ${l} head ${h} values`);
    }
  }
  assertEquals(dev.bytesHeld(), cpu.bytesHeld(), `${what}: bytesHeld`);
  assertEquals(dev.bytesUsed(), cpu.bytesUsed(), `${what}: bytesUsed`);
  assertEquals(dev.nominal(), cpu.nominal(), `${what}: nominal`);
  assertEquals(dev.nextPosition, cpu.nextPosition, `${what}: nextPosition`);
  assertEquals(dev.tokensSeen, cpu.tokensSeen, `${what}: tokensSeen`);
}

function bits(x: Float32Array): Uint32Array {
  return new Uint32Array(x.buffer.slice(x.byteOffset, x.byteOffset + x.byteLength));
}

/** Two stores driven by the same operations. */
function twins(gpu: GpuContext, shape: KvStoreShape) {
  const cpu = new CpuKvStore(shape, { executor: referenceAttention });
  const dev = new GpuKvStore(gpu, shape);
  const next = seededRandom(99);
  const width = shape.numKvHeads * shape.headDim;
  return {
    cpu,
    dev,
    append(layers: number[], count: number): void {
      const start = cpu.nextPosition;
      const pos = Int32Array.from({ length: count }, (_, i) => start + i);
      for (const l of layers) {
        const k = randomArray(next, count * width);
        const v = randomArray(next, count * width);
        cpu.append(l, k, v, pos);
        dev.append(l, k, v, pos);
      }
    },
    evict(layer: number, rule: (h: number, j: number) => boolean): void {
      const keep = Array.from(
        cpu.lengths(layer),
        (n, h) => Int32Array.from([...Array(n).keys()].filter((j) => rule(h, j))),
      );
      cpu.evict(layer, keep);
      dev.evict(layer, keep);
    },
  };
}

gpuTest(
  "GpuKvStore: eviction, mark, restore and clone hold the CPU store's entries",
  async (gpu) => {
    const shape: KvStoreShape = {
      numLayers: 3,
      numKvHeads: 3,
      group: 2,
      headDim: 5,
      slidingWindows: [null, 6, null],
    };
    const s = twins(gpu, shape);
    const all = [0, 1, 2];
    s.append(all, 20);
    await assertSameEntries(s.cpu, s.dev, "after the first chunk");
    // Ragged: head 0 keeps many scattered entries (a gather dispatch), head 1 one run (copies),
    // head 2 nothing.
    s.evict(0, (h, j) => (h === 0 ? j % 3 !== 0 : h === 1 ? j >= 15 : false));
    s.evict(2, (h, j) => (j + h) % 2 === 0);
    await assertSameEntries(s.cpu, s.dev, "after eviction");
    s.append(all, 7);
    for (let i = 0; i < 5; i++) s.append(all, 1);
    await assertSameEntries(s.cpu, s.dev, "after a chunk and decode steps");
    const mark = s.cpu.mark();
    const devMark = s.dev.mark();
    assertEquals(devMark, mark, "marks");
    await assertSameEntries(s.cpu, s.dev, "after the mark (window trimmed eagerly)");
    const cpuSnapshot = s.cpu.clone();
    const devSnapshot = s.dev.clone();
    s.append(all, 4);
    for (let i = 0; i < 9; i++) s.append(all, 1);
    s.evict(2, (h, j) => j !== 3 + h);
    await assertSameEntries(s.cpu, s.dev, "a query after the mark");
    // Evicting marked entries makes the mark unrestorable on both.
    assertThrows(() => s.cpu.restore(mark), Error, "cannot be restored");
    assertThrows(() => s.dev.restore(devMark), Error, "cannot be restored");
    // The clones kept the marked state, exactly sized, and still restore to the mark.
    await assertSameEntries(cpuSnapshot, devSnapshot, "the clones");
    assertEquals(devSnapshot.bytesHeld(), devSnapshot.bytesUsed(), "a clone is exactly sized");
    for (const store of [cpuSnapshot, devSnapshot]) {
      store.append(
        0,
        new Float32Array(15),
        new Float32Array(15),
        Int32Array.of(store.nextPosition),
      );
    }
    cpuSnapshot.restore(mark);
    devSnapshot.restore(devMark);
    await assertSameEntries(cpuSnapshot, devSnapshot, "the clones restored");
    s.dev.clear();
    devSnapshot.clear();
    assertEquals(s.dev.bytesHeld(), 0);
  },
);

gpuTest("GpuKvStore: mark/restore isolates queries and keeps memory exact", async (gpu) => {
  const shape: KvStoreShape = { numLayers: 2, numKvHeads: 2, group: 1, headDim: 3 };
  const allocatedBefore = gpu.bytesAllocated;
  const s = twins(gpu, shape);
  s.append([0, 1], 12);
  s.evict(1, (h, j) => j % (h + 2) === 0);
  const cpuMark = s.cpu.mark();
  const devMark = s.dev.mark();
  for (let query = 0; query < 3; query++) {
    s.append([0, 1], 3 + query);
    for (let i = 0; i < 4; i++) s.append([0, 1], 1);
    s.cpu.restore(cpuMark);
    s.dev.restore(devMark);
    await assertSameEntries(s.cpu, s.dev, `after query ${query}`);
  }
  // Evicted storage is exactly sized, on the device too.
  s.evict(0, (_, j) => j < 5);
  s.evict(1, (h, j) => j !== h);
  assertEquals(s.dev.bytesHeld(), s.dev.bytesUsed());
  await assertSameEntries(s.cpu, s.dev, "after a final eviction");
  // bytesHeld is the device memory the store really holds (no attention ran: no scratch).
  assertEquals(gpu.bytesAllocated - allocatedBefore, s.dev.bytesHeld());
  const bytesBefore = gpu.bytesAllocated;
  s.dev.clear();
  assert(gpu.bytesAllocated < bytesBefore, "clear releases device memory");
});

gpuTest("GpuKvStore: sliding layers trim like the CPU store, never past a mark", async (gpu) => {
  const shape: KvStoreShape = {
    numLayers: 1,
    numKvHeads: 1,
    group: 1,
    headDim: 2,
    slidingWindows: [8],
  };
  const s = twins(gpu, shape);
  for (let p = 0; p < 40; p++) s.append([0], 1);
  await assertSameEntries(s.cpu, s.dev, "40 single appends");
  const mark = s.cpu.mark();
  const devMark = s.dev.mark();
  assertEquals(s.dev.positions(0, 0), Int32Array.of(33, 34, 35, 36, 37, 38, 39));
  for (let p = 40; p < 110; p++) s.append([0], 1);
  await assertSameEntries(s.cpu, s.dev, "70 appends after the mark");
  s.cpu.restore(mark);
  s.dev.restore(devMark);
  await assertSameEntries(s.cpu, s.dev, "restored");
});

gpuTest("GpuKvStore: bad input fails like the CPU store", (gpu) => {
  const dev = new GpuKvStore(gpu, { numLayers: 1, numKvHeads: 2, group: 1, headDim: 2 });
  dev.append(0, new Float32Array(8), new Float32Array(8), Int32Array.of(0, 1));
  assertThrows(
    () => dev.append(0, new Float32Array(4), new Float32Array(4), Int32Array.of(1)),
    Error,
    "not after the last stored position",
  );
  assertThrows(() => dev.evict(0, [Int32Array.of(1, 0), Int32Array.of(0)]), Error, "increasing");
  assertThrows(() => dev.evict(0, [Int32Array.of(0)]), Error, "expected 2 keep-sets");
  assertThrows(
    () => dev.append(0, new Float32Array(3), new Float32Array(4), Int32Array.of(5)),
    Error,
    "expected keys and values",
  );
  dev.clear();
  return Promise.resolve();
});

gpuTest("GpuKvStore: a segment larger than one binding is refused clearly", (gpu) => {
  const dev = new GpuKvStore(gpu, { numLayers: 1, numKvHeads: 1, group: 1, headDim: 4 });
  // 1024-byte bindings hold 28 entries of 9 words.
  assertEquals(dev.maxEntries, 28);
  dev.append(
    0,
    new Float32Array(20 * 4),
    new Float32Array(20 * 4),
    Int32Array.from({ length: 20 }, (_, i) => i),
  );
  assertThrows(
    () =>
      dev.append(
        0,
        new Float32Array(9 * 4),
        new Float32Array(9 * 4),
        Int32Array.from({ length: 9 }, (_, i) => 20 + i),
      ),
    Error,
    "above the 28 that fit one storage binding",
  );
  dev.clear();
  return Promise.resolve();
}, { maxBinding: 1024 });
