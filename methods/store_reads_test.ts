/**
 * What methods read from a store, on both backends: `positions`, `readEntries` (ranges,
 * several segments per call, empty ranges) and `entryNorms` of the GPU store against the CPU
 * store holding the same entries, after appends and a ragged eviction. Entries must match
 * exactly; norms within f32 rounding (the device sums in f32, the CPU in f64).
 */

import { assert, assertClose, assertEquals, assertRejects } from "../tests/assert.ts";
import { CpuKvStore, type KvStore, type KvStoreShape } from "../kernels/kv_store.ts";
import { GpuKvStore } from "../kernels/webgpu/kv_store.ts";
import { gpuTest } from "../kernels/webgpu/test_support.ts";
import { positions, randomArray, seeded } from "./testing.ts";

const SHAPE: KvStoreShape = { numLayers: 2, numKvHeads: 3, group: 2, headDim: 5 };

function fill(stores: KvStore[]): void {
  const rand = seeded(31);
  const { numKvHeads: H, headDim: d } = SHAPE;
  for (let l = 0; l < SHAPE.numLayers; l++) {
    const k = randomArray(rand, 40 * H * d);
    const v = randomArray(rand, 40 * H * d);
    for (const s of stores) s.append(l, k, v, positions(0, 40));
  }
  // Ragged: head 0 keeps every third entry, head 1 none, head 2 all but the first.
  const keep = [
    Int32Array.from({ length: 14 }, (_, i) => 3 * i),
    new Int32Array(0),
    positions(1, 40),
  ];
  for (const s of stores) s.evict(1, keep);
}

Deno.test("CpuKvStore reads: views of the segments, checked ranges, f64 norms", async () => {
  const cpu = new CpuKvStore(SHAPE);
  fill([cpu]);
  const [whole, part, empty] = await cpu.readEntries([
    { layer: 1, head: 0 },
    { layer: 1, head: 2, from: 3, to: 7 },
    { layer: 1, head: 1 },
  ]);
  const seg = cpu.segment(1, 0);
  assertEquals(whole.keys, seg.keys);
  assertEquals(whole.positions, cpu.positions(1, 0));
  assertEquals([...part.positions], [4, 5, 6, 7]);
  assertEquals(part.values, cpu.segment(1, 2).values.subarray(15, 35));
  assertEquals(empty.length, 0);
  assert(whole.keys.buffer === seg.keys.buffer, "a view, not a copy");
  await assertRejects(
    () => cpu.readEntries([{ layer: 0, head: 0, from: 5, to: 41 }]),
    Error,
    "[5, 41)",
  );
  const [norms] = await cpu.entryNorms(1, "values");
  const d = SHAPE.headDim;
  for (let i = 0; i < seg.length; i++) {
    let s = 0;
    for (let j = 0; j < d; j++) s += seg.values[i * d + j] ** 2;
    assertEquals(norms[i], Math.fround(Math.sqrt(s)));
  }
});

gpuTest("GpuKvStore reads match the CPU store's: positions, entries, norms", async (gpu) => {
  const cpu = new CpuKvStore(SHAPE);
  const dev = new GpuKvStore(gpu, SHAPE);
  fill([cpu, dev]);
  const ranges = [
    { layer: 0, head: 1 },
    { layer: 1, head: 0, from: 2, to: 9 },
    { layer: 1, head: 1 },
    { layer: 1, head: 2, from: 38 },
  ];
  const want = await cpu.readEntries(ranges);
  const got = await dev.readEntries(ranges);
  for (let i = 0; i < ranges.length; i++) {
    assertEquals(got[i].keys, want[i].keys.slice(), `keys of range ${i}`);
    assertEquals(got[i].values, want[i].values.slice(), `values of range ${i}`);
    assertEquals(got[i].positions, want[i].positions.slice(), `positions of range ${i}`);
    assertEquals(got[i].length, want[i].length);
  }
  for (let l = 0; l < SHAPE.numLayers; l++) {
    for (let h = 0; h < SHAPE.numKvHeads; h++) {
      assertEquals(dev.positions(l, h), cpu.positions(l, h).slice());
    }
    for (const part of ["keys", "values"] as const) {
      const a = await dev.entryNorms(l, part);
      const b = await cpu.entryNorms(l, part);
      for (let h = 0; h < SHAPE.numKvHeads; h++) assertClose(a[h], b[h], 1e-6);
    }
  }
});
