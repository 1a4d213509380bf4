/**
 * The element-wise and per-row kernels against host references: embedding gather (f32 and
 * f16 tables, split across bindings), RMSNorm with and without the fused residual add, q/k
 * norm + RoPE + KV entry layout, SiLU and GELU-tanh gating (large |x| included), tanh
 * soft-capping and the bit-exact row gather used by eviction.
 *
 * Tolerances: gathers are exact; everything else within 1e-4 relative to
 * max(|want|, 1e-2 · max|want|) (the references compute in f64).
 */

import { assert, assertEquals } from "../../tests/assert.ts";
import { seededRandom } from "../random.ts";
import type { GpuContext } from "./device.ts";
import { releaseMatrix, uploadMatrix } from "./matmul.ts";
import {
  embed,
  entryWords,
  gateActivation,
  gatherRows,
  qkNormRope,
  rmsNorm,
  softcap,
} from "./ops.ts";
import { gpuTest, randomArray, relativeError } from "./test_support.ts";

const TOLERANCE = 1e-4;

function check(actual: Float32Array, expected: ArrayLike<number>, what: string): void {
  const err = relativeError(actual, expected);
  assert(err <= TOLERANCE, `${what}: relative error ${err} exceeds ${TOLERANCE}`);
}

/** Read `buffer` back as f32 after running `record`. */
async function runAndRead(
  gpu: GpuContext,
  record: (rec: ReturnType<GpuContext["recorder"]>) => void,
  buffers: GPUBuffer[],
): Promise<Float32Array[]> {
  const rec = gpu.recorder();
  record(rec);
  const reads = buffers.map((b) => rec.read(b, 0, b.size));
  await rec.finish();
  return reads.map((r) => new Float32Array(r.data()));
}

async function testEmbed(gpu: GpuContext, dtype: "f32" | "f16"): Promise<number> {
  const next = seededRandom(11);
  const V = 53;
  const D = 19;
  const table = randomArray(next, V * D);
  const m = uploadMatrix(gpu, table, { rows: V, cols: D, dtype, label: "table" });
  const ids = Int32Array.of(0, 52, 7, 8, 9, 31, 7);
  const idBuffer = gpu.upload(ids, "ids");
  const x = gpu.createBuffer(ids.length * D * 4, "x");
  const scale = 1.75;
  const [got] = await runAndRead(gpu, (rec) => {
    embed(rec, m, idBuffer, x, { tokens: ids.length, scale });
  }, [x]);
  const source = dtype === "f16" ? Float32Array.from(new Float16Array(table)) : table;
  const want = new Float32Array(ids.length * D);
  ids.forEach((id, t) => {
    for (let i = 0; i < D; i++) want[t * D + i] = source[id * D + i] * scale;
  });
  assertEquals(got, want, `embedding gather (${dtype})`);
  const chunks = m.chunks.length;
  releaseMatrix(gpu, m);
  gpu.release(idBuffer);
  gpu.release(x);
  return chunks;
}

gpuTest("embed: rows gathered and scaled exactly (f32 and f16 tables)", async (gpu) => {
  assertEquals(await testEmbed(gpu, "f32"), 1);
  if (gpu.f16) await testEmbed(gpu, "f16");
});

gpuTest("embed: a table split across bindings", async (gpu) => {
  // 256-byte bindings hold 3 rows of 19 f32: the 53 rows span 18 chunks.
  assertEquals(await testEmbed(gpu, "f32"), 18);
  if (gpu.f16) await testEmbed(gpu, "f16");
}, { maxBinding: 256 });

gpuTest("rmsNorm: plain and fused with the residual add, rows at an offset", async (gpu) => {
  const next = seededRandom(5);
  for (const D of [40, 300]) {
    const rows = 3;
    const offset = 2 * D; // skip two rows
    const x = randomArray(next, (rows + 2) * D, 3);
    const addend = randomArray(next, (rows + 2) * D);
    const w = randomArray(next, D, 2);
    const eps = 1e-6;
    for (const fused of [false, true]) {
      const xb = gpu.upload(x, "x");
      const ab = gpu.upload(addend, "addend");
      const wb = gpu.upload(w, "w");
      const yb = gpu.createBuffer(x.byteLength, "y");
      const [gotX, gotY] = await runAndRead(gpu, (rec) => {
        rmsNorm(rec, { x: xb, addend: fused ? ab : null, w: wb, y: yb }, { rows, D, eps, offset });
      }, [xb, yb]);
      const sum = x.map((v, i) => (fused ? Math.fround(v + addend[i]) : v));
      const want = new Float32Array(rows * D);
      for (let r = 0; r < rows; r++) {
        const row = sum.subarray(offset + r * D, offset + (r + 1) * D);
        const ms = row.reduce((a, v) => a + v * v, 0) / D;
        const rms = Math.sqrt(ms + eps);
        for (let i = 0; i < D; i++) want[r * D + i] = (row[i] / rms) * w[i];
      }
      check(gotY.subarray(offset, offset + rows * D), want, `y, D ${D}, fused ${fused}`);
      // The residual stream holds x + addend when fused, x otherwise; rows before are untouched.
      assertEquals(
        gotX.subarray(offset, offset + rows * D),
        sum.subarray(offset, offset + rows * D),
      );
      assertEquals(gotX.subarray(0, offset), x.subarray(0, offset));
      for (const b of [xb, ab, wb, yb]) gpu.release(b);
    }
  }
});

gpuTest("qkNormRope: per-head norm, rotate_half RoPE and the KV entry layout", async (gpu) => {
  const next = seededRandom(23);
  for (
    const { d, qkNorm } of [{ d: 12, qkNorm: true }, { d: 10, qkNorm: false }, {
      d: 130,
      qkNorm: true,
    }]
  ) {
    const T = 3;
    const Hq = 4;
    const Hkv = 2;
    const half = d / 2;
    const width = (Hq + 2 * Hkv) * d;
    const qkv = randomArray(next, T * width, 2);
    const cos = randomArray(next, T * half);
    const sin = randomArray(next, T * half);
    const qn = randomArray(next, d, 1.5);
    const kn = randomArray(next, d, 1.5);
    const positions = Int32Array.of(7, 8, 1_000_000);
    const eps = 1e-6;
    const buffers = {
      qkv: gpu.upload(qkv, "qkv"),
      cos: gpu.upload(cos, "cos"),
      sin: gpu.upload(sin, "sin"),
      qNorm: qkNorm ? gpu.upload(qn, "qn") : null,
      kNorm: qkNorm ? gpu.upload(kn, "kn") : null,
      positions: gpu.upload(positions, "positions"),
      q: gpu.createBuffer(T * Hq * d * 4, "q"),
      stage: gpu.createBuffer(Hkv * T * entryWords(d) * 4, "stage"),
    };
    const [gotQ, gotStage] = await runAndRead(gpu, (rec) => {
      qkNormRope(rec, buffers, { tokens: T, numHeads: Hq, numKvHeads: Hkv, headDim: d, eps });
    }, [buffers.q, buffers.stage]);
    const rotate = (t: number, src: number, w: Float32Array | null): number[] => {
      let row = Array.from(qkv.subarray(src, src + d));
      if (w !== null) {
        const rms = Math.sqrt(row.reduce((a, v) => a + v * v, 0) / d + eps);
        row = row.map((v, i) => (v / rms) * w[i]);
      }
      const out = new Array<number>(d);
      for (let i = 0; i < half; i++) {
        const c = cos[t * half + i];
        const s = sin[t * half + i];
        out[i] = row[i] * c - row[i + half] * s;
        out[i + half] = row[i + half] * c + row[i] * s;
      }
      return out;
    };
    const wantQ = new Float32Array(T * Hq * d);
    const E = entryWords(d);
    const wantKeys: number[] = [];
    const gotKeys: number[] = [];
    const stageBits = new Int32Array(gotStage.buffer);
    for (let t = 0; t < T; t++) {
      for (let h = 0; h < Hq; h++) {
        wantQ.set(rotate(t, t * width + h * d, qkNorm ? qn : null), (t * Hq + h) * d);
      }
      for (let h = 0; h < Hkv; h++) {
        const entry = (h * T + t) * E;
        wantKeys.push(...rotate(t, t * width + (Hq + h) * d, qkNorm ? kn : null));
        gotKeys.push(...gotStage.subarray(entry, entry + d));
        const v = qkv.subarray(t * width + (Hq + Hkv + h) * d, t * width + (Hq + Hkv + h + 1) * d);
        assertEquals(gotStage.subarray(entry + d, entry + 2 * d), v, `values t ${t} head ${h}`);
        assertEquals(stageBits[entry + 2 * d], positions[t], `position t ${t} head ${h}`);
      }
    }
    check(gotQ, wantQ, `queries, d ${d}`);
    check(Float32Array.from(gotKeys), wantKeys, `keys, d ${d}`);
    for (const b of Object.values(buffers)) gpu.release(b);
  }
});

gpuTest("gateActivation: SiLU and GELU-tanh gating, large |x| included", async (gpu) => {
  const next = seededRandom(8);
  const T = 3;
  const I = 37;
  const gu = randomArray(next, T * 2 * I, 6);
  gu[0] = 60;
  gu[1] = -60;
  gu[2] = 1e-7;
  const gelu = (x: number) =>
    0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
  const silu = (x: number) => x / (1 + Math.exp(-x));
  for (const activation of ["silu", "gelu_tanh"] as const) {
    const guBuffer = gpu.upload(gu, "gu");
    const out = gpu.createBuffer(T * I * 4, "out");
    const [got] = await runAndRead(gpu, (rec) => {
      gateActivation(rec, guBuffer, out, { tokens: T, intermediate: I, activation });
    }, [out]);
    const f = activation === "silu" ? silu : gelu;
    const want = Array.from({ length: T * I }, (_, e) => {
      const t = Math.floor(e / I);
      const i = e % I;
      return f(gu[t * 2 * I + i]) * gu[t * 2 * I + I + i];
    });
    check(got, want, activation);
    gpu.release(guBuffer);
    gpu.release(out);
  }
});

gpuTest("softcap: tanh(y / cap) · cap in place, from an offset", async (gpu) => {
  const y = Float32Array.of(1, 2, 3, -80, 0.5, 200, -1e-6);
  const buffer = gpu.upload(y, "y");
  const [got] = await runAndRead(
    gpu,
    (rec) => softcap(rec, buffer, { count: 5, cap: 30, offset: 2 }),
    [
      buffer,
    ],
  );
  const want = Array.from(y, (v, i) => (i < 2 ? v : Math.tanh(v / 30) * 30));
  check(got, want, "softcap");
  gpu.release(buffer);
});

gpuTest("gatherRows: entries copied bit for bit", async (gpu) => {
  const E = 7;
  const src = Uint32Array.from({ length: 20 * E }, (_, i) => (i * 2654435761) >>> 0);
  const keep = Uint32Array.of(0, 3, 4, 19, 7);
  const srcBuffer = gpu.upload(src, "src");
  const keepBuffer = gpu.upload(keep, "keep");
  const dst = gpu.createBuffer(keep.length * E * 4, "dst");
  const [got] = await runAndRead(gpu, (rec) => {
    gatherRows(rec, { keep: keepBuffer, src: srcBuffer, dst }, { rows: keep.length, rowWords: E });
  }, [dst]);
  const want = new Uint32Array(keep.length * E);
  keep.forEach((j, i) => want.set(src.subarray(j * E, (j + 1) * E), i * E));
  assertEquals(new Uint32Array(got.buffer), want);
  for (const b of [srcBuffer, keepBuffer, dst]) gpu.release(b);
});
