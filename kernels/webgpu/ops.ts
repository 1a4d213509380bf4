/**
 * The element-wise and per-row kernels of the forward pass, each a pure function of device
 * buffers with its shapes in the signature: embedding gather, RMSNorm (optionally fused with
 * the residual add), per-head q/k RMSNorm + RoPE that also lays keys, values and positions out
 * as KV entries, the gated MLP activations and tanh soft-capping.
 *
 * Arithmetic follows the ONNX graphs of engine/graphs.ts operation by operation (e.g. RMSNorm
 * is x / sqrt(mean(x²) + ε) · w), so the two backends differ only by rounding.
 *
 * @module
 */

import { grid1d, type KernelDef, type Recorder } from "./device.ts";
import type { GpuMatrix } from "./matmul.ts";

/** Largest head dimension the per-head kernels (and attention) support. */
export const MAX_HEAD_DIM = 256;

/**
 * Words of one KV entry as the store lays it out: the key (d), the value (d), then the
 * original position (one u32 holding the i32 bits).
 */
export function entryWords(headDim: number): number {
  return 2 * headDim + 1;
}

/** tanh that cannot overflow: |x| ≥ 15 already rounds to ±1 in f32. */
export const WGSL_TANH = /* wgsl */ `
fn tanh_safe(x: f32) -> f32 {
  return tanh(clamp(x, -15.0, 15.0));
}`;

function embedDef(dtype: "f32" | "f16"): KernelDef {
  return {
    name: `embed_${dtype}`,
    f16: dtype === "f16",
    params: [["T", "u32"], ["D", "u32"], ["row0", "u32"], ["rows", "u32"], ["scale", "f32"]],
    bindings: [["ids", "read", "i32"], ["table", "read", dtype], ["x", "write", "f32"]],
    workgroupSize: "64",
    body: /* wgsl */ `
@compute
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let e = (wid.x + wid.y * nwg.x) * 64u + li;
  if (e >= p.T * p.D) {
    return;
  }
  let t = e / p.D;
  let i = e % p.D;
  let id = ids[t];
  if (id < i32(p.row0) || id >= i32(p.row0 + p.rows)) {
    return;
  }
  x[e] = f32(table[u32(id - i32(p.row0)) * p.D + i]) * p.scale;
}`,
  };
}

/**
 * x[t, :] = table[ids[t], :] · scale for T tokens; `table` may be split across chunks.
 *
 * @example
 * ```ts
 * embed(rec, embedTable, ids, x, { tokens: 3, scale: 1 });
 * ```
 */
export function embed(
  rec: Recorder,
  table: GpuMatrix,
  ids: GPUBuffer,
  x: GPUBuffer,
  o: { tokens: number; scale: number },
): void {
  const kernel = rec.gpu.kernel(embedDef(table.dtype));
  const count = o.tokens * table.cols;
  for (const chunk of table.chunks) {
    rec.dispatch(
      kernel,
      { T: o.tokens, D: table.cols, row0: chunk.row0, rows: chunk.rows, scale: o.scale },
      { ids, table: chunk.buffer, x },
      grid1d(Math.ceil(count / 64)),
    );
  }
}

const RMS_NORM: KernelDef = {
  name: "rms_norm",
  params: [["rows", "u32"], ["D", "u32"], ["eps", "f32"], ["off", "u32"], ["hasAdd", "u32"]],
  bindings: [["x", "write", "f32"], ["addend", "read", "f32"], ["w", "read", "f32"], [
    "y",
    "write",
    "f32",
  ]],
  workgroupSize: "128",
  body: /* wgsl */ `
var<workgroup> red: array<f32, 128>;
@compute
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let r = wid.x + wid.y * nwg.x;
  if (r >= p.rows) {
    return;
  }
  let base = p.off + r * p.D;
  var ss = 0.0;
  for (var i = li; i < p.D; i += 128u) {
    var v = x[base + i];
    if (p.hasAdd != 0u) {
      v += addend[base + i];
      x[base + i] = v;
    }
    ss += v * v;
  }
  red[li] = ss;
  workgroupBarrier();
  for (var s = 64u; s > 0u; s >>= 1u) {
    if (li < s) {
      red[li] += red[li + s];
    }
    workgroupBarrier();
  }
  let rms = sqrt(red[0] / f32(p.D) + p.eps);
  for (var i = li; i < p.D; i += 128u) {
    y[base + i] = x[base + i] / rms * w[i];
  }
}`,
};

/**
 * Per row r of `rows` rows of width D starting at element `offset`: when `addend` is given,
 * x += addend first (the residual add, written back to x); then y = x / sqrt(mean(x²) + ε) · w.
 * `w` holds the weights as multiplied (Gemma's 1 + w already applied). y must not alias x.
 *
 * @example
 * ```ts
 * rmsNorm(rec, { x: residual, addend: mlpOut, w: norm, y: hidden }, { rows: T, D: 64, eps: 1e-6 });
 * ```
 */
export function rmsNorm(
  rec: Recorder,
  io: { x: GPUBuffer; addend?: GPUBuffer | null; w: GPUBuffer; y: GPUBuffer },
  o: { rows: number; D: number; eps: number; offset?: number },
): void {
  rec.dispatch(
    rec.gpu.kernel(RMS_NORM),
    { rows: o.rows, D: o.D, eps: o.eps, off: o.offset ?? 0, hasAdd: io.addend ? 1 : 0 },
    { x: io.x, addend: io.addend ?? rec.gpu.dummy, w: io.w, y: io.y },
    grid1d(o.rows),
  );
}

const QK_NORM_ROPE: KernelDef = {
  name: "qk_norm_rope",
  params: [
    ["T", "u32"],
    ["Hq", "u32"],
    ["Hkv", "u32"],
    ["d", "u32"],
    ["half", "u32"],
    ["E", "u32"],
    ["qkNorm", "u32"],
    ["eps", "f32"],
  ],
  bindings: [
    ["qkv", "read", "f32"],
    ["cosT", "read", "f32"],
    ["sinT", "read", "f32"],
    ["qn", "read", "f32"],
    ["kn", "read", "f32"],
    ["qpos", "read", "i32"],
    ["q", "write", "f32"],
    ["stage", "write", "u32"],
  ],
  workgroupSize: "64",
  body: /* wgsl */ `
var<workgroup> row: array<f32, ${MAX_HEAD_DIM}>;
var<workgroup> red: array<f32, 64>;
// Workgroup (head, t): heads [0, Hq) are queries, then Hkv keys, then Hkv values.
@compute
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) li: u32) {
  let head = wid.x;
  let t = wid.y;
  let src = t * (p.Hq + 2u * p.Hkv) * p.d + head * p.d;
  for (var i = li; i < p.d; i += 64u) {
    row[i] = qkv[src + i];
  }
  workgroupBarrier();
  let isQ = head < p.Hq;
  let isK = !isQ && head < p.Hq + p.Hkv;
  if (isQ || isK) {
    if (p.qkNorm != 0u) {
      var ss = 0.0;
      for (var i = li; i < p.d; i += 64u) {
        ss += row[i] * row[i];
      }
      red[li] = ss;
      workgroupBarrier();
      for (var s = 32u; s > 0u; s >>= 1u) {
        if (li < s) {
          red[li] += red[li + s];
        }
        workgroupBarrier();
      }
      let rms = sqrt(red[0] / f32(p.d) + p.eps);
      for (var i = li; i < p.d; i += 64u) {
        var wv = kn[i];
        if (isQ) {
          wv = qn[i];
        }
        row[i] = row[i] / rms * wv;
      }
      workgroupBarrier();
    }
    // HF rotate_half: (x1, x2) -> (x1·cos − x2·sin, x2·cos + x1·sin).
    for (var i = li; i < p.half; i += 64u) {
      let c = cosT[t * p.half + i];
      let s = sinT[t * p.half + i];
      let a = row[i];
      let b = row[i + p.half];
      let r1 = a * c - b * s;
      let r2 = b * c + a * s;
      if (isQ) {
        let o = (t * p.Hq + head) * p.d;
        q[o + i] = r1;
        q[o + i + p.half] = r2;
      } else {
        let o = ((head - p.Hq) * p.T + t) * p.E;
        stage[o + i] = bitcast<u32>(r1);
        stage[o + i + p.half] = bitcast<u32>(r2);
      }
    }
    if (isK && li == 0u) {
      stage[((head - p.Hq) * p.T + t) * p.E + 2u * p.d] = bitcast<u32>(qpos[t]);
    }
  } else {
    let o = ((head - p.Hq - p.Hkv) * p.T + t) * p.E + p.d;
    for (var i = li; i < p.d; i += 64u) {
      stage[o + i] = bitcast<u32>(row[i]);
    }
  }
}`,
};

/** Buffers of {@linkcode qkNormRope}. */
export interface QkNormRopeIo {
  /** Fused projections [T, (Hq + 2·Hkv)·d]: all query heads, then keys, then values. */
  qkv: GPUBuffer;
  /** RoPE tables [T, d/2] (HF's values, attention scaling included). */
  cos: GPUBuffer;
  sin: GPUBuffer;
  /** Per-head norm weights [d] (as multiplied), when the model has q/k norms. */
  qNorm: GPUBuffer | null;
  kNorm: GPUBuffer | null;
  /** Positions [T] (i32). */
  positions: GPUBuffer;
  /** Out: queries [T, Hq, d] after norm and RoPE. */
  q: GPUBuffer;
  /** Out: KV entries [Hkv, T, 2d + 1] (key after norm and RoPE, value, position). */
  stage: GPUBuffer;
}

/**
 * Split fused q/k/v projections per head, apply the optional per-head RMSNorm and RoPE to
 * queries and keys, and write queries [T, Hq, d] and KV entries [Hkv, T, 2d + 1].
 *
 * @example
 * ```ts
 * qkNormRope(rec, io, { tokens: T, numHeads: 8, numKvHeads: 2, headDim: 64, eps: 1e-6 });
 * ```
 */
export function qkNormRope(
  rec: Recorder,
  io: QkNormRopeIo,
  o: { tokens: number; numHeads: number; numKvHeads: number; headDim: number; eps: number },
): void {
  const d = o.headDim;
  if (d > MAX_HEAD_DIM || d % 2 !== 0) {
    throw new Error(`qkNormRope: head dim ${d} must be even and at most ${MAX_HEAD_DIM}`);
  }
  const dummy = rec.gpu.dummy;
  rec.dispatch(
    rec.gpu.kernel(QK_NORM_ROPE),
    {
      T: o.tokens,
      Hq: o.numHeads,
      Hkv: o.numKvHeads,
      d,
      half: d / 2,
      E: entryWords(d),
      qkNorm: io.qNorm ? 1 : 0,
      eps: o.eps,
    },
    {
      qkv: io.qkv,
      cosT: io.cos,
      sinT: io.sin,
      qn: io.qNorm ?? dummy,
      kn: io.kNorm ?? dummy,
      qpos: io.positions,
      q: io.q,
      stage: io.stage,
    },
    [o.numHeads + 2 * o.numKvHeads, o.tokens],
  );
}

/** Activation of the gated MLP. */
export type Activation = "silu" | "gelu_tanh";

const GATE_ACT: KernelDef = {
  name: "gate_act",
  params: [["count", "u32"], ["I", "u32"], ["gelu", "u32"]],
  bindings: [["gu", "read", "f32"], ["out", "write", "f32"]],
  workgroupSize: "64",
  body: /* wgsl */ `
${WGSL_TANH}
@compute
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let e = (wid.x + wid.y * nwg.x) * 64u + li;
  if (e >= p.count) {
    return;
  }
  let t = e / p.I;
  let i = e % p.I;
  let g = gu[t * 2u * p.I + i];
  let u = gu[t * 2u * p.I + p.I + i];
  var a: f32;
  if (p.gelu != 0u) {
    let inner = g + (g * g) * g * 0.044715;
    a = (g * 0.5) * (tanh_safe(inner * 0.7978845608028654) + 1.0);
  } else {
    a = g * (1.0 / (1.0 + exp(-g)));
  }
  out[e] = a * u;
}`,
};

/**
 * out[t, i] = act(gu[t, i]) · gu[t, I + i] for gate and up projections fused as [T, 2I].
 *
 * @example
 * ```ts
 * gateActivation(rec, gateUp, act, { tokens: T, intermediate: 3072, activation: "silu" });
 * ```
 */
export function gateActivation(
  rec: Recorder,
  gateUp: GPUBuffer,
  out: GPUBuffer,
  o: { tokens: number; intermediate: number; activation: Activation },
): void {
  const count = o.tokens * o.intermediate;
  rec.dispatch(
    rec.gpu.kernel(GATE_ACT),
    { count, I: o.intermediate, gelu: o.activation === "gelu_tanh" ? 1 : 0 },
    { gu: gateUp, out },
    grid1d(Math.ceil(count / 64)),
  );
}

const SOFTCAP: KernelDef = {
  name: "softcap",
  params: [["count", "u32"], ["off", "u32"], ["cap", "f32"]],
  bindings: [["y", "write", "f32"]],
  workgroupSize: "64",
  body: /* wgsl */ `
${WGSL_TANH}
@compute
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let e = (wid.x + wid.y * nwg.x) * 64u + li;
  if (e >= p.count) {
    return;
  }
  y[p.off + e] = tanh_safe(y[p.off + e] / p.cap) * p.cap;
}`,
};

/**
 * In place: y = tanh(y / cap) · cap over `count` elements from element `offset`.
 *
 * @example
 * ```ts
 * softcap(rec, logits, { count: vocab, cap: 30 });
 * ```
 */
export function softcap(
  rec: Recorder,
  y: GPUBuffer,
  o: { count: number; cap: number; offset?: number },
): void {
  rec.dispatch(
    rec.gpu.kernel(SOFTCAP),
    { count: o.count, off: o.offset ?? 0, cap: o.cap },
    { y },
    grid1d(Math.ceil(o.count / 64)),
  );
}

const GATHER_ROWS: KernelDef = {
  name: "gather_rows",
  params: [["count", "u32"], ["E", "u32"]],
  bindings: [["keep", "read", "u32"], ["src", "read", "u32"], ["dst", "write", "u32"]],
  workgroupSize: "64",
  body: /* wgsl */ `
@compute
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let e = (wid.x + wid.y * nwg.x) * 64u + li;
  if (e >= p.count) {
    return;
  }
  let i = e / p.E;
  dst[e] = src[keep[i] * p.E + e % p.E];
}`,
};

/**
 * dst[i, :] = src[keep[i], :] for rows of `rowWords` 32-bit words (bit-exact).
 *
 * @example
 * ```ts
 * gatherRows(rec, { keep, src, dst }, { rows: kept, rowWords: 2 * headDim + 1 });
 * ```
 */
export function gatherRows(
  rec: Recorder,
  io: { keep: GPUBuffer; src: GPUBuffer; dst: GPUBuffer },
  o: { rows: number; rowWords: number },
): void {
  const count = o.rows * o.rowWords;
  rec.dispatch(
    rec.gpu.kernel(GATHER_ROWS),
    { count, E: o.rowWords },
    io,
    grid1d(Math.ceil(count / 64)),
  );
}
