/**
 * Fused attention over one KV head's segment on the device, and the score statistics of the
 * same probabilities, without ever materialising queries × keys.
 *
 * A segment is one buffer of entries [n, 2d + 1] (key, value, position bits; see
 * {@linkcode entryWords}), positions ascending, so the keys a query at qPos sees form one run
 * [lo, hi): hi is the first entry past qPos, lo the first still inside the sliding window.
 * Each workgroup finds its run by binary search and skips everything else.
 *
 * 1. `attn_partial`, one workgroup per (query row, key chunk): flash-style online softmax over
 *    tiles of 64 keys, keeping the running max m, the denominator l and the output
 *    accumulator. The 64 lanes split each key's dims for q·k and each value's dims for p·v,
 *    so every read of an entry is contiguous across lanes; each lane owns ⌈d/64⌉ output dims
 *    (one kernel variant per count, unrolled). With one chunk it writes the output and
 *    (m, l) directly; with several (decode steps over long segments, where rows alone give
 *    too little parallelism) it writes partials that
 * 2. `attn_combine` merges per row.
 * 3. `attn_stats`, one thread per key, recomputes each probability from (m, l) and reduces it
 *    over the call's queries (column sum, column max, last-w mean, last row) and then over
 *    the group's query heads (mean or max), exactly as the CPU reference does.
 *
 * Rows are (g, t) for g in the group and t in the chunk; the query head is h·G + g.
 *
 * @module
 */

import { type GpuContext, grid1d, type KernelDef, type Recorder } from "./device.ts";
import { MAX_HEAD_DIM, WGSL_TANH } from "./ops.ts";
import { STAT_NAMES, type StatName } from "../kv_store.ts";

/** Keys per tile of the partial kernel, and its lanes. */
const TILE = 64;
/** A very negative score standing in for −∞ (WGSL has no infinity literal). */
const NEG = "-3.0e38";

const SEGMENT_FNS = /* wgsl */ `
fn kpos(j: u32) -> i32 {
  return bitcast<i32>(seg[j * p.E + 2u * p.d]);
}
fn logit(j: u32) -> f32 {
  var dot = 0.0;
  let base = j * p.E;
  for (var i = 0u; i < p.d; i++) {
    dot += qs[i] * bitcast<f32>(seg[base + i]);
  }
  var s = dot * p.scale;
  if (p.softcap > 0.0) {
    s = tanh_safe(s / p.softcap) * p.softcap;
  }
  return s;
}`;

const LANES = ["x", "y", "z", "w"];

/** Code for each of the `dpt` dims a thread owns (dim li + 64k), unrolled. */
function perDim(dpt: number, line: (k: number, lane: string) => string): string {
  return Array.from(
    { length: dpt },
    (_, k) => `    if (li + ${TILE * k}u < p.d) { ${line(k, LANES[k])} }`,
  ).join("\n");
}

/** The partial kernel for threads owning `dpt` = ceil(d / 64) output dims each. */
function partialDef(dpt: number): KernelDef {
  return {
    name: `attn_partial_${dpt}`,
    params: [
      ["T", "u32"],
      ["n", "u32"],
      ["d", "u32"],
      ["E", "u32"],
      ["G", "u32"],
      ["Hq", "u32"],
      ["h", "u32"],
      ["chunks", "u32"],
      ["span", "u32"],
      ["scale", "f32"],
      ["softcap", "f32"],
      ["window", "i32"],
    ],
    bindings: [
      ["q", "read", "f32"],
      ["seg", "read", "u32"],
      ["qpos", "read", "i32"],
      ["out", "write", "f32"],
      ["part", "write", "f32"],
      ["rowstat", "write", "f32"],
    ],
    workgroupSize: String(TILE),
    body: /* wgsl */ `
${WGSL_TANH}
var<workgroup> qs: array<f32, ${MAX_HEAD_DIM}>;
var<workgroup> ps: array<f32, ${TILE}>;
var<workgroup> red: array<f32, ${TILE}>;
var<workgroup> run: vec2u;
// Partial dot products [key][lane], padded to ${TILE + 1} so column reads spread over banks.
var<workgroup> dots: array<f32, ${TILE * (TILE + 1)}>;
${SEGMENT_FNS}
fn first_after(limit: i32) -> u32 {
  var lo = 0u;
  var hi = p.n;
  while (lo < hi) {
    let mid = (lo + hi) / 2u;
    if (kpos(mid) > limit) {
      hi = mid;
    } else {
      lo = mid + 1u;
    }
  }
  return lo;
}
@compute
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) li: u32) {
  let c = wid.x;
  let r = wid.y;
  let g = r / p.T;
  let t = r % p.T;
  let head = p.h * p.G + g;
  let qOff = (t * p.Hq + head) * p.d;
  for (var i = li; i < p.d; i += ${TILE}u) {
    qs[i] = q[qOff + i];
  }
  if (li == 0u) {
    let qp = qpos[t];
    let hi = first_after(qp);
    var lo = 0u;
    if (p.window >= 0) {
      lo = first_after(qp - p.window);
    }
    let c0 = c * p.span;
    let c1 = min(p.n, c0 + p.span);
    run = vec2u(max(lo, c0), min(hi, c1));
  }
  let keys = workgroupUniformLoad(&run);
  var m = ${NEG};
  var l = 0.0;
  var acc = vec4f(0.0);
  // The query dims this thread owns (li + 64k), kept in registers.
  var qv = vec4f(0.0);
${perDim(dpt, (k, lane) => `qv.${lane} = qs[li + ${TILE * k}u];`)}
  for (var j0 = keys.x; j0 < keys.y; j0 += ${TILE}u) {
    let j = j0 + li;
    let count = min(${TILE}u, keys.y - j0);
    // q·k for the tile's keys: lanes split each key's dims (coalesced reads of the key row),
    // then lane j sums key j's partials.
    for (var jj = 0u; jj < count; jj++) {
      let row = (j0 + jj) * p.E + li;
      var part = 0.0;
${perDim(dpt, (k, lane) => `part += qv.${lane} * bitcast<f32>(seg[row + ${TILE * k}u]);`)}
      dots[jj * ${TILE + 1}u + li] = part;
    }
    workgroupBarrier();
    var s = ${NEG};
    if (j < keys.y) {
      var dot = 0.0;
      for (var t = 0u; t < ${TILE}u; t++) {
        dot += dots[li * ${TILE + 1}u + t];
      }
      s = dot * p.scale;
      if (p.softcap > 0.0) {
        s = tanh_safe(s / p.softcap) * p.softcap;
      }
    }
    red[li] = s;
    workgroupBarrier();
    for (var w = ${TILE / 2}u; w > 0u; w >>= 1u) {
      if (li < w) {
        red[li] = max(red[li], red[li + w]);
      }
      workgroupBarrier();
    }
    let mNew = max(m, red[0]);
    workgroupBarrier();
    var pj = 0.0;
    if (j < keys.y) {
      pj = exp(s - mNew);
    }
    ps[li] = pj;
    red[li] = pj;
    workgroupBarrier();
    for (var w = ${TILE / 2}u; w > 0u; w >>= 1u) {
      if (li < w) {
        red[li] += red[li + w];
      }
      workgroupBarrier();
    }
    let corr = exp(m - mNew);
    l = l * corr + red[0];
    m = mNew;
    var a = acc * corr;
    for (var jj = 0u; jj < count; jj++) {
      let pj = ps[jj];
      let row = (j0 + jj) * p.E + p.d + li;
${perDim(dpt, (k, lane) => `a.${lane} += pj * bitcast<f32>(seg[row + ${TILE * k}u]);`)}
    }
    acc = a;
    workgroupBarrier();
  }
  if (p.chunks == 1u) {
    var inv = 0.0;
    if (l > 0.0) {
      inv = 1.0 / l;
    }
    let o = acc * inv;
${perDim(dpt, (k, lane) => `out[qOff + li + ${TILE * k}u] = o.${lane};`)}
    if (li == 0u) {
      rowstat[(head * p.T + t) * 2u] = m;
      rowstat[(head * p.T + t) * 2u + 1u] = l;
    }
  } else {
    let base = ((head * p.T + t) * p.chunks + c) * (p.d + 2u);
${perDim(dpt, (k, lane) => `part[base + li + ${TILE * k}u] = acc.${lane};`)}
    if (li == 0u) {
      part[base + p.d] = m;
      part[base + p.d + 1u] = l;
    }
  }
}`,
  };
}

const COMBINE: KernelDef = {
  name: "attn_combine",
  params: [["rows", "u32"], ["T", "u32"], ["Hq", "u32"], ["d", "u32"], ["chunks", "u32"]],
  bindings: [["part", "read", "f32"], ["out", "write", "f32"], ["rowstat", "write", "f32"]],
  workgroupSize: "64",
  body: /* wgsl */ `
@compute
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let r = wid.x + wid.y * nwg.x;
  if (r >= p.rows) {
    return;
  }
  let head = r / p.T;
  let t = r % p.T;
  let stride = p.d + 2u;
  let base = r * p.chunks * stride;
  var m = ${NEG};
  for (var c = 0u; c < p.chunks; c++) {
    m = max(m, part[base + c * stride + p.d]);
  }
  var l = 0.0;
  for (var c = 0u; c < p.chunks; c++) {
    l += part[base + c * stride + p.d + 1u] * exp(part[base + c * stride + p.d] - m);
  }
  var inv = 0.0;
  if (l > 0.0) {
    inv = 1.0 / l;
  }
  for (var i = li; i < p.d; i += 64u) {
    var a = 0.0;
    for (var c = 0u; c < p.chunks; c++) {
      a += part[base + c * stride + i] * exp(part[base + c * stride + p.d] - m);
    }
    out[(t * p.Hq + head) * p.d + i] = a * inv;
  }
  if (li == 0u) {
    rowstat[r * 2u] = m;
    rowstat[r * 2u + 1u] = l;
  }
}`,
};

const STATS: KernelDef = {
  name: "attn_stats",
  params: [
    ["T", "u32"],
    ["n", "u32"],
    ["d", "u32"],
    ["E", "u32"],
    ["G", "u32"],
    ["Hq", "u32"],
    ["h", "u32"],
    ["scale", "f32"],
    ["softcap", "f32"],
    ["window", "i32"],
    ["want", "u32"],
    ["wStart", "u32"],
    ["invW", "f32"],
    ["gqaMax", "u32"],
    ["statsOff", "u32"],
  ],
  bindings: [
    ["q", "read", "f32"],
    ["seg", "read", "u32"],
    ["qpos", "read", "i32"],
    ["rowstat", "read", "f32"],
    ["stats", "write", "f32"],
  ],
  workgroupSize: "64",
  body: /* wgsl */ `
${WGSL_TANH}
var<workgroup> qs: array<f32, ${MAX_HEAD_DIM}>;
${SEGMENT_FNS}
// One thread per entry j; every row (g, t) in turn shares its query through workgroup memory.
@compute
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let j = (wid.x + wid.y * nwg.x) * 64u + li;
  let valid = j < p.n;
  var kp = 0;
  if (valid) {
    kp = kpos(j);
  }
  var rSum = 0.0;
  var rMax = 0.0;
  var rWin = 0.0;
  var rLast = 0.0;
  for (var g = 0u; g < p.G; g++) {
    let head = p.h * p.G + g;
    var sum = 0.0;
    var mx = 0.0;
    var win = 0.0;
    var last = 0.0;
    for (var t = 0u; t < p.T; t++) {
      workgroupBarrier();
      for (var i = li; i < p.d; i += 64u) {
        qs[i] = q[(t * p.Hq + head) * p.d + i];
      }
      workgroupBarrier();
      let qp = qpos[t];
      let l = rowstat[(head * p.T + t) * 2u + 1u];
      if (valid && kp <= qp && (p.window < 0 || qp - kp < p.window) && l > 0.0) {
        let m = rowstat[(head * p.T + t) * 2u];
        let pr = exp(logit(j) - m) / l;
        sum += pr;
        mx = max(mx, pr);
        if (t >= p.wStart) {
          win += pr;
        }
        if (t + 1u == p.T) {
          last = pr;
        }
      }
    }
    if (p.gqaMax != 0u) {
      rSum = max(rSum, sum);
      rMax = max(rMax, mx);
      rWin = max(rWin, win);
      rLast = max(rLast, last);
    } else {
      rSum += sum;
      rMax += mx;
      rWin += win;
      rLast += last;
    }
  }
  if (!valid) {
    return;
  }
  if (p.gqaMax == 0u) {
    let inv = 1.0 / f32(p.G);
    rSum *= inv;
    rMax *= inv;
    rWin *= inv;
    rLast *= inv;
  }
  var slot = 0u;
  if ((p.want & 1u) != 0u) {
    stats[p.statsOff + slot * p.n + j] = rSum;
    slot++;
  }
  if ((p.want & 2u) != 0u) {
    stats[p.statsOff + slot * p.n + j] = rMax;
    slot++;
  }
  if ((p.want & 4u) != 0u) {
    stats[p.statsOff + slot * p.n + j] = rWin * p.invW;
    slot++;
  }
  if ((p.want & 8u) != 0u) {
    stats[p.statsOff + slot * p.n + j] = rLast;
  }
}`,
};

/** One KV head's segment as attention reads it. */
export interface SegmentView {
  /** Entries [≥ length, 2d + 1], or null when empty. */
  buffer: GPUBuffer | null;
  length: number;
}

/** Buffers and shape of one attention call over a layer. */
export interface AttentionIo {
  /** Queries [T, Hq, d] (post-RoPE, unscaled). */
  q: GPUBuffer;
  /** Query positions [T] (i32). */
  positions: GPUBuffer;
  /** Out: [T, Hq, d]. */
  out: GPUBuffer;
  tokens: number;
}

/** Options of one attention call (the store's AttendOptions with the window resolved). */
export interface DeviceAttendOptions {
  scale: number;
  softcap: number | null;
  window: number | null;
  stats: StatName[];
  gqa: "mean" | "max";
  /** Queries averaged by lastWindowMean (clamped to the call's length by the caller). */
  lastWindow: number;
}

/** Statistics left on the device: per KV head, `names.length` rows of that head's length. */
export interface DeviceStats {
  buffer: GPUBuffer;
  names: StatName[];
  /** Element offset and length of each head's block. */
  heads: { offset: number; length: number }[];
}

/** Key chunks per row: enough workgroups for decode, one chunk (no combine) for prefill. */
export function attentionChunks(rows: number, longest: number): number {
  const byWork = Math.ceil(128 / Math.max(rows, 1));
  const byLength = Math.ceil(longest / 128);
  return Math.max(1, Math.min(64, byWork, byLength));
}

/**
 * Record attention of T query rows over every KV head's segment of one layer, plus the
 * statistics asked for. Scratch comes from the context; the statistics buffer is new and
 * owned by the caller (release it after reading).
 *
 * @example
 * ```ts
 * const stats = attendLayer(rec, segments, io, shape, { scale, softcap: null, window: null,
 *   stats: ["columnSum"], gqa: "mean", lastWindow: 0 });
 * ```
 */
export function attendLayer(
  rec: Recorder,
  segments: readonly SegmentView[],
  io: AttentionIo,
  shape: { group: number; headDim: number },
  options: DeviceAttendOptions,
): DeviceStats | null {
  const gpu: GpuContext = rec.gpu;
  const T = io.tokens;
  const G = shape.group;
  const d = shape.headDim;
  const Hkv = segments.length;
  const Hq = Hkv * G;
  const E = 2 * d + 1;
  if (d > MAX_HEAD_DIM) throw new Error(`attention: head dim ${d} exceeds ${MAX_HEAD_DIM}`);
  if (G * T > 65535) {
    throw new Error(`attention: ${G}×${T} query rows per head exceed 65535; use smaller chunks`);
  }
  if (T === 0) return null;
  const longest = Math.max(0, ...segments.map((s) => s.length));
  const chunks = attentionChunks(G * T, longest);
  const rowstat = gpu.scratch(rec, "attn_rowstat", Hq * T * 2 * 4);
  const part = chunks > 1
    ? gpu.scratch(rec, "attn_part", Hq * T * chunks * (d + 2) * 4)
    : gpu.dummyOut;
  const window = options.window ?? -1;
  const softcap = options.softcap ?? 0;
  const partial = gpu.kernel(partialDef(Math.ceil(d / TILE)));
  segments.forEach((seg, h) => {
    rec.dispatch(
      partial,
      {
        T,
        n: seg.length,
        d,
        E,
        G,
        Hq,
        h,
        chunks,
        span: Math.max(1, Math.ceil(seg.length / chunks)),
        scale: options.scale,
        softcap,
        window,
      },
      {
        q: io.q,
        seg: seg.buffer ?? gpu.dummy,
        qpos: io.positions,
        out: io.out,
        part,
        rowstat,
      },
      [chunks, G * T],
    );
  });
  if (chunks > 1) {
    rec.dispatch(
      gpu.kernel(COMBINE),
      { rows: Hq * T, T, Hq, d, chunks },
      { part, out: io.out, rowstat },
      grid1d(Hq * T),
    );
  }
  if (options.stats.length === 0) return null;
  const names = STAT_NAMES.filter((s) => options.stats.includes(s));
  const heads: { offset: number; length: number }[] = [];
  let total = 0;
  for (const seg of segments) {
    heads.push({ offset: total, length: seg.length });
    total += names.length * seg.length;
  }
  const buffer = gpu.createBuffer(total * 4, "attention stats");
  let want = 0;
  names.forEach((name) => (want |= 1 << STAT_NAMES.indexOf(name)));
  const lastW = Math.max(1, Math.min(options.lastWindow, T));
  const stats = gpu.kernel(STATS);
  segments.forEach((seg, h) => {
    if (seg.length === 0) return;
    rec.dispatch(
      stats,
      {
        T,
        n: seg.length,
        d,
        E,
        G,
        Hq,
        h,
        scale: options.scale,
        softcap,
        window,
        want,
        wStart: T - lastW,
        invW: 1 / lastW,
        gqaMax: options.gqa === "max" ? 1 : 0,
        statsOff: heads[h].offset,
      },
      { q: io.q, seg: seg.buffer!, qpos: io.positions, rowstat, stats: buffer },
      grid1d(Math.ceil(seg.length / 64)),
    );
  });
  return { buffer, names, heads };
}
