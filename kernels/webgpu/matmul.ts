/**
 * Dense matrices on the device and y = x·Wᵀ (+ b) in WGSL, f32 accumulation throughout.
 *
 * A {@linkcode GpuMatrix} is a weight in Hugging Face layout [rows, cols] (out × in), stored
 * as f32 or, when the device has shader-f16, as f16. A matrix larger than the context's
 * maxBinding is split by rows into chunks that each fit one binding; {@linkcode matmul}
 * dispatches once per chunk and each chunk writes its own columns of y.
 *
 * Two kernels: a GEMV-like one for M ≤ 4 rows of x (decode), where 64 lanes split each dot
 * product (one variant per M, accumulators unrolled), and a 64×64-tiled one (16×16 threads,
 * 4×4 outputs each, k-tiles of 16 in workgroup memory) for prefill chunks. Sizes need not be
 * multiples of anything.
 *
 * @module
 */

import { type GpuContext, grid1d, type Kernel, type KernelDef, type Recorder } from "./device.ts";

/** Element type of stored weights. */
export type WeightDtype = "f32" | "f16";

/** One row range of a matrix, in its own buffer. */
export interface MatrixChunk {
  buffer: GPUBuffer;
  /** First row of the matrix this chunk holds. */
  row0: number;
  rows: number;
  /** f32 bias of these rows, or null. */
  bias: GPUBuffer | null;
}

/** A weight matrix [rows, cols] on the device, split by rows across bindings when needed. */
export interface GpuMatrix {
  rows: number;
  cols: number;
  dtype: WeightDtype;
  chunks: MatrixChunk[];
  /** Device bytes held (weights and bias). */
  bytes: number;
}

/** Rows per chunk so one chunk fits `maxBinding` (a multiple of 64 when that is possible). */
export function chunkRows(cols: number, dtype: WeightDtype, maxBinding: number): number {
  const rowBytes = cols * (dtype === "f16" ? 2 : 4);
  const fit = Math.floor(maxBinding / rowBytes);
  if (fit < 1) {
    throw new Error(
      `a row of ${cols} ${dtype} values (${rowBytes} bytes) exceeds the max storage binding of ${maxBinding} bytes`,
    );
  }
  return fit >= 64 ? fit - (fit % 64) : fit;
}

/**
 * Upload `data` [rows, cols] (f32, row-major) as a {@linkcode GpuMatrix}, converted to
 * `dtype` (f16 rounds to nearest even) and split into chunks that fit a binding.
 *
 * @example
 * ```ts
 * const w = uploadMatrix(gpu, weights, { rows: 96, cols: 64, dtype: "f16", label: "q_proj" });
 * ```
 */
export function uploadMatrix(
  gpu: GpuContext,
  data: Float32Array,
  o: { rows: number; cols: number; dtype?: WeightDtype; bias?: Float32Array | null; label: string },
): GpuMatrix {
  const dtype = o.dtype ?? "f32";
  if (dtype === "f16" && !gpu.f16) throw new Error(`${o.label}: the device has no shader-f16`);
  if (data.length !== o.rows * o.cols) {
    throw new Error(`${o.label}: expected ${o.rows}×${o.cols} values, got ${data.length}`);
  }
  if (o.bias && o.bias.length !== o.rows) {
    throw new Error(`${o.label}: expected a bias of ${o.rows}, got ${o.bias.length}`);
  }
  const per = chunkRows(o.cols, dtype, gpu.maxBinding);
  const chunks: MatrixChunk[] = [];
  let bytes = 0;
  for (let row0 = 0; row0 < o.rows; row0 += per) {
    const rows = Math.min(per, o.rows - row0);
    const part = data.subarray(row0 * o.cols, (row0 + rows) * o.cols);
    const stored = dtype === "f16" ? new Float16Array(part) : part;
    const buffer = gpu.upload(stored, `${o.label}[${row0}:${row0 + rows}]`);
    const bias = o.bias ? gpu.upload(o.bias.subarray(row0, row0 + rows), `${o.label}.bias`) : null;
    bytes += buffer.size + (bias?.size ?? 0);
    chunks.push({ buffer, row0, rows, bias });
  }
  return { rows: o.rows, cols: o.cols, dtype, chunks, bytes };
}

/** Free a matrix's buffers. */
export function releaseMatrix(gpu: GpuContext, m: GpuMatrix): void {
  for (const c of m.chunks) {
    gpu.release(c.buffer);
    gpu.release(c.bias);
  }
}

const PARAMS = [
  ["M", "u32"],
  ["N", "u32"],
  ["K", "u32"],
  ["xOff", "u32"],
  ["yOff", "u32"],
  ["ldy", "u32"],
  ["hasBias", "u32"],
] as const;

function bindings(dtype: WeightDtype) {
  return [
    ["x", "read", "f32"],
    ["w", "read", dtype],
    ["bias", "read", "f32"],
    ["y", "write", "f32"],
  ] as const;
}

/** Rows of x up to which the GEMV kernel is used. */
export const GEMV_MAX_ROWS = 4;

const LANES = ["x", "y", "z", "w"];

/**
 * GEMV-like kernel for exactly M ≤ 4 rows of x: 4 output columns per workgroup, 64 lanes
 * splitting each dot product, the M accumulators in one vec4 (unrolled per M, so nothing is
 * indexed dynamically).
 */
function gemvDef(dtype: WeightDtype, M: number): KernelDef {
  const accumulate = Array.from(
    { length: M },
    (_, m) => `      acc.${LANES[m]} += x[p.xOff + ${m}u * p.K + k] * wv;`,
  ).join("\n");
  const store = Array.from(
    { length: M },
    (_, m) => `    y[p.yOff + ${m}u * p.ldy + n] = v.${LANES[m]};`,
  ).join("\n");
  return {
    name: `gemv${M}_${dtype}`,
    f16: dtype === "f16",
    params: PARAMS,
    bindings: bindings(dtype),
    workgroupSize: "256",
    body: /* wgsl */ `
var<workgroup> red: array<vec4f, 256>;
@compute
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let col = li / 64u;
  let lane = li % 64u;
  let n = (wid.x + wid.y * nwg.x) * 4u + col;
  var acc = vec4f(0.0);
  if (n < p.N) {
    let wBase = n * p.K;
    for (var k = lane; k < p.K; k += 64u) {
      let wv = f32(w[wBase + k]);
${accumulate}
    }
  }
  red[li] = acc;
  workgroupBarrier();
  for (var s = 32u; s > 0u; s >>= 1u) {
    if (lane < s) {
      red[li] += red[li + s];
    }
    workgroupBarrier();
  }
  if (lane == 0u && n < p.N) {
    var v = red[li];
    if (p.hasBias != 0u) {
      v += vec4f(bias[n]);
    }
${store}
  }
}`,
  };
}

function tiledDef(dtype: WeightDtype): KernelDef {
  return {
    name: `gemm_${dtype}`,
    f16: dtype === "f16",
    params: PARAMS,
    bindings: bindings(dtype),
    workgroupSize: "16, 16",
    body: /* wgsl */ `
// A 64×64 tile of y per workgroup; thread (ty, tx) owns rows ty + 16i and columns tx + 16j,
// accumulated as four vec4 rows.
var<workgroup> xs: array<f32, 1024>; // [16 k][64 rows]
var<workgroup> ws: array<f32, 1024>; // [16 k][64 cols]
@compute
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let tid = lid.y * 16u + lid.x;
  let m0 = wid.y * 64u;
  let n0 = wid.x * 64u;
  var acc0 = vec4f(0.0);
  var acc1 = vec4f(0.0);
  var acc2 = vec4f(0.0);
  var acc3 = vec4f(0.0);
  for (var k0 = 0u; k0 < p.K; k0 += 16u) {
    for (var i = 0u; i < 4u; i++) {
      let e = tid + i * 256u;
      let r = e / 16u;
      let c = e % 16u;
      let gk = k0 + c;
      var xv = 0.0;
      if (m0 + r < p.M && gk < p.K) {
        xv = x[p.xOff + (m0 + r) * p.K + gk];
      }
      xs[c * 64u + r] = xv;
      var wv = 0.0;
      if (n0 + r < p.N && gk < p.K) {
        wv = f32(w[(n0 + r) * p.K + gk]);
      }
      ws[c * 64u + r] = wv;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < 16u; kk++) {
      let o = kk * 64u;
      let a = vec4f(xs[o + lid.y], xs[o + lid.y + 16u], xs[o + lid.y + 32u], xs[o + lid.y + 48u]);
      let b = vec4f(ws[o + lid.x], ws[o + lid.x + 16u], ws[o + lid.x + 32u], ws[o + lid.x + 48u]);
      acc0 += a.x * b;
      acc1 += a.y * b;
      acc2 += a.z * b;
      acc3 += a.w * b;
    }
    workgroupBarrier();
  }
  let rows = array<vec4f, 4>(acc0, acc1, acc2, acc3);
  for (var i = 0u; i < 4u; i++) {
    let m = m0 + lid.y + 16u * i;
    let row = rows[i];
    for (var j = 0u; j < 4u; j++) {
      let n = n0 + lid.x + 16u * j;
      if (m < p.M && n < p.N) {
        var v = row[j];
        if (p.hasBias != 0u) {
          v += bias[n];
        }
        y[p.yOff + m * p.ldy + n] = v;
      }
    }
  }
}`,
  };
}

/** Layout of x and y for {@linkcode matmul}. */
export interface MatmulShape {
  /** Rows of x (tokens). */
  M: number;
  /** Element offset of x's first row (x is [M, cols] contiguous). */
  xOffset?: number;
  /** Element offset of y[0, 0]. */
  yOffset?: number;
  /** Row stride of y in elements (default w.rows). */
  ldy?: number;
}

/**
 * Record y[m, n] = Σ_k x[m, k]·W[n, k] + b[n] for every row n of `w` (one dispatch per chunk).
 *
 * @example
 * ```ts
 * matmul(rec, hidden, wq, q, { M: tokens });
 * ```
 */
export function matmul(
  rec: Recorder,
  x: GPUBuffer,
  w: GpuMatrix,
  y: GPUBuffer,
  shape: MatmulShape,
): void {
  const { M } = shape;
  if (M === 0) return;
  const gemv = M <= GEMV_MAX_ROWS;
  const kernel: Kernel = rec.gpu.kernel(gemv ? gemvDef(w.dtype, M) : tiledDef(w.dtype));
  const ldy = shape.ldy ?? w.rows;
  for (const chunk of w.chunks) {
    const params = {
      M,
      N: chunk.rows,
      K: w.cols,
      xOff: shape.xOffset ?? 0,
      yOff: (shape.yOffset ?? 0) + chunk.row0,
      ldy,
      hasBias: chunk.bias === null ? 0 : 1,
    };
    const buffers = { x, w: chunk.buffer, bias: chunk.bias ?? rec.gpu.dummy, y };
    if (gemv) {
      rec.dispatch(kernel, params, buffers, grid1d(Math.ceil(chunk.rows / 4)));
    } else {
      rec.dispatch(kernel, params, buffers, [Math.ceil(chunk.rows / 64), Math.ceil(M / 64)]);
    }
  }
}
