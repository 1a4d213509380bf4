/**
 * y = x·Wᵀ + b on the device against an f64 host reference, for both kernels (GEMV for
 * M ≤ 4 rows, tiled above), sizes that are not multiples of any tile, offsets into x and y,
 * f16 weights, and weights split across bindings by a small maxBinding.
 *
 * Tolerances: f32 weights within 1e-4 relative (to max(|want|, 1e-2 · max|want|)); f16
 * weights within 1e-4 of the reference computed from the same f16-rounded weights (the
 * kernel accumulates in f32), and within 1e-2 · max|want| of the f32-weight reference (the
 * rounding of the weights to f16).
 */

import { assert, assertEquals } from "../../tests/assert.ts";
import { seededRandom } from "../random.ts";
import type { GpuContext } from "./device.ts";
import {
  chunkRows,
  GEMV_MAX_ROWS,
  matmul,
  releaseMatrix,
  uploadMatrix,
  type WeightDtype,
} from "./matmul.ts";
import { gpuTest, randomArray, relativeError } from "./test_support.ts";

/** y[m, n] = Σ_k x[m, k]·w[n, k] + b[n] in f64. */
function reference(
  x: Float32Array,
  w: Float32Array,
  bias: Float32Array | null,
  M: number,
  N: number,
  K: number,
): Float32Array {
  const y = new Float32Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let acc = bias ? bias[n] : 0;
      for (let k = 0; k < K; k++) acc += x[m * K + k] * w[n * K + k];
      y[m * N + n] = acc;
    }
  }
  return y;
}

async function run(
  gpu: GpuContext,
  o: { M: number; N: number; K: number; dtype: WeightDtype; bias: boolean; seed: number },
): Promise<
  { got: Float32Array; w: Float32Array; x: Float32Array; b: Float32Array | null; chunks: number }
> {
  const next = seededRandom(o.seed);
  const { M, N, K } = o;
  const x = randomArray(next, (M + 2) * K); // two extra rows: x starts at row 2
  const w = randomArray(next, N * K);
  const b = o.bias ? randomArray(next, N) : null;
  const matrix = uploadMatrix(gpu, w, { rows: N, cols: K, dtype: o.dtype, bias: b, label: "w" });
  const xBuffer = gpu.upload(x, "x");
  // y is written with a row stride of N + 3 from element 5, to check ldy and yOffset.
  const ldy = N + 3;
  const yBuffer = gpu.createBuffer((5 + M * ldy) * 4, "y");
  const rec = gpu.recorder();
  matmul(rec, xBuffer, matrix, yBuffer, { M, xOffset: 2 * K, yOffset: 5, ldy });
  const read = rec.read(yBuffer, 0, (5 + M * ldy) * 4);
  await rec.finish();
  const all = new Float32Array(read.data());
  const got = new Float32Array(M * N);
  for (let m = 0; m < M; m++) got.set(all.subarray(5 + m * ldy, 5 + m * ldy + N), m * N);
  releaseMatrix(gpu, matrix);
  gpu.release(xBuffer);
  gpu.release(yBuffer);
  return { got, w, x: x.subarray(2 * K), b, chunks: matrix.chunks.length };
}

const SHAPES: [number, number, number][] = [
  [1, 1, 1],
  [1, 37, 53],
  [3, 130, 70],
  [GEMV_MAX_ROWS, 65, 129],
  [5, 67, 33],
  [70, 129, 131],
  [130, 64, 16],
];

for (const dtype of ["f32", "f16"] as const) {
  gpuTest(`matmul ${dtype}: GEMV and tiled kernels match an f64 reference`, async (gpu, t) => {
    if (dtype === "f16" && !gpu.f16) {
      console.log(`matmul f16 skipped: ${gpu.adapterName} has no shader-f16`);
      return;
    }
    for (const [M, N, K] of SHAPES) {
      for (const bias of [false, true]) {
        await t.step(`M ${M}, N ${N}, K ${K}${bias ? ", bias" : ""}`, async () => {
          const r = await run(gpu, { M, N, K, dtype, bias, seed: M * 1000 + N + K });
          if (dtype === "f32") {
            const err = relativeError(r.got, reference(r.x, r.w, r.b, M, N, K));
            assert(err <= 1e-4, `relative error ${err} exceeds 1e-4`);
          } else {
            const rounded = Float32Array.from(new Float16Array(r.w));
            const err = relativeError(r.got, reference(r.x, rounded, r.b, M, N, K));
            assert(err <= 1e-4, `vs f16-rounded weights: relative error ${err} exceeds 1e-4`);
            const loose = relativeError(r.got, reference(r.x, r.w, r.b, M, N, K), 1);
            assert(loose <= 1e-2, `vs f32 weights: error ${loose} · max|want| exceeds 1e-2`);
          }
        });
      }
    }
  });
}

gpuTest("matmul: weights split across bindings give the same result", async (gpu) => {
  // 1 KiB bindings: 3 rows of 70 f32 (280 bytes) per chunk, 7 of 70 f16.
  assertEquals(chunkRows(70, "f32", gpu.maxBinding), 3);
  for (const dtype of gpu.f16 ? ["f32", "f16"] as const : ["f32"] as const) {
    for (const M of [2, 9]) {
      const r = await run(gpu, { M, N: 41, K: 70, dtype, bias: true, seed: 7 + M });
      assert(r.chunks > 5, `expected many chunks, got ${r.chunks}`);
      const w = dtype === "f16" ? Float32Array.from(new Float16Array(r.w)) : r.w;
      const err = relativeError(r.got, reference(r.x, w, r.b, M, 41, 70));
      assert(err <= 1e-4, `${dtype}, M ${M}: relative error ${err} exceeds 1e-4`);
    }
  }
}, { maxBinding: 1024 });
