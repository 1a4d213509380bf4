/**
 * The GEMM peak: each shape's median over samples, the best shape's, so one lucky run cannot
 * raise the ceiling and one slow run cannot lower it.
 */

import { assert, assertEquals } from "../tests/assert.ts";
import { gemmPeakOf, GemmPeakProbe } from "./ceilings.ts";

Deno.test("gemmPeakOf: the best shape by its median sample", () => {
  const sample = (a: number, b: number) => [
    { gflops: a, label: "A" },
    { gflops: b, label: "B" },
  ];
  // A's samples 100, 300, 110 (median 110); B's 150, 140, 160 (median 150): B wins although A
  // once ran at 300.
  const peak = gemmPeakOf([sample(100, 150), sample(300, 140), sample(110, 160)]);
  assertEquals(peak.value, 150);
  assertEquals(peak.detail, "B, median of 3");
  assertEquals(gemmPeakOf([]).value, 0);
});

Deno.test("GemmPeakProbe: one timed run per shape, in order", async () => {
  const probe = await GemmPeakProbe.create([[64, 32, 48], [32, 64, 16]], { threads: 1 });
  try {
    const sample = await probe.sample();
    assertEquals(sample.map((s) => s.label), ["Gemm 64×32×48", "Gemm 32×64×16"]);
    for (const s of sample) assert(s.gflops > 0 && Number.isFinite(s.gflops), String(s.gflops));
  } finally {
    await probe.release();
  }
});
