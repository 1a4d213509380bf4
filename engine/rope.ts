/**
 * Rotary position embeddings: inverse frequencies for every scaling variant (none, linear,
 * llama3, yarn) and cos/sin tables for a run of positions. Arithmetic follows HF transformers'
 * float32 computation step by step (each intermediate is rounded to f32 with Math.fround), so
 * the angles agree with the reference even at long positions.
 *
 * @module
 */

import type { RopeSpec } from "./types.ts";

const f32 = Math.fround;

/** Inverse frequencies [headDim / 2] and the factor HF multiplies cos and sin by. */
export interface RopeFrequencies {
  invFreq: Float32Array;
  /** YaRN's attention factor; 1 for the other variants. */
  attentionScaling: number;
}

/**
 * Compute inverse frequencies for one layer's rotary embedding.
 *
 * @example
 * ```ts
 * const { invFreq } = ropeFrequencies(128, { theta: 1e6, scaling: null });
 * ```
 */
export function ropeFrequencies(headDim: number, rope: RopeSpec): RopeFrequencies {
  const half = headDim / 2;
  const base = new Float32Array(half);
  // HF: 1 / (theta ** (arange(0, dim, 2).float() / dim)), all in float32.
  const posFreqs = new Float32Array(half);
  for (let i = 0; i < half; i++) {
    posFreqs[i] = f32(Math.pow(rope.theta, f32((2 * i) / headDim)));
    base[i] = f32(1 / posFreqs[i]);
  }
  const scaling = rope.scaling;
  if (scaling === null) return { invFreq: base, attentionScaling: 1 };
  switch (scaling.type) {
    case "linear": {
      const invFreq = base.map((x) => f32(x / scaling.factor));
      return { invFreq, attentionScaling: 1 };
    }
    case "llama3":
      return { invFreq: llama3Frequencies(base, scaling), attentionScaling: 1 };
    case "yarn":
      return yarnFrequencies(posFreqs, headDim, rope.theta, scaling);
  }
}

function llama3Frequencies(
  invFreq: Float32Array,
  s: {
    factor: number;
    lowFreqFactor: number;
    highFreqFactor: number;
    originalMaxPositionEmbeddings: number;
  },
): Float32Array {
  const lowFreqWavelen = s.originalMaxPositionEmbeddings / s.lowFreqFactor;
  const highFreqWavelen = s.originalMaxPositionEmbeddings / s.highFreqFactor;
  const out = new Float32Array(invFreq.length);
  for (let i = 0; i < invFreq.length; i++) {
    const wavelen = f32((2 * Math.PI) / invFreq[i]);
    let freq = wavelen > lowFreqWavelen ? f32(invFreq[i] / s.factor) : invFreq[i];
    const isMedium = !(wavelen < highFreqWavelen) && !(wavelen > lowFreqWavelen);
    if (isMedium) {
      const smooth = f32(
        f32(f32(s.originalMaxPositionEmbeddings / wavelen) - s.lowFreqFactor) /
          (s.highFreqFactor - s.lowFreqFactor),
      );
      freq = f32(f32(f32(f32(1 - smooth) * freq) / s.factor) + f32(smooth * freq));
    }
    out[i] = freq;
  }
  return out;
}

function yarnMscale(scale: number, mscale = 1): number {
  return scale <= 1 ? 1 : 0.1 * mscale * Math.log(scale) + 1;
}

function yarnFrequencies(
  posFreqs: Float32Array,
  headDim: number,
  theta: number,
  s: Extract<NonNullable<RopeSpec["scaling"]>, { type: "yarn" }>,
): RopeFrequencies {
  let attentionScaling = s.attentionFactor;
  if (attentionScaling === null) {
    attentionScaling = s.mscale && s.mscaleAllDim
      ? yarnMscale(s.factor, s.mscale) / yarnMscale(s.factor, s.mscaleAllDim)
      : yarnMscale(s.factor);
  }
  const correctionDim = (rotations: number): number =>
    (headDim * Math.log(s.originalMaxPositionEmbeddings / (rotations * 2 * Math.PI))) /
    (2 * Math.log(theta));
  let low = correctionDim(s.betaFast);
  let high = correctionDim(s.betaSlow);
  if (s.truncate) {
    low = Math.floor(low);
    high = Math.ceil(high);
  }
  low = Math.max(low, 0);
  high = Math.min(high, headDim - 1);
  if (low === high) high += 0.001;
  const half = headDim / 2;
  const invFreq = new Float32Array(half);
  for (let i = 0; i < half; i++) {
    const ramp = Math.min(1, Math.max(0, f32(f32(i - low) / f32(high - low))));
    const extrapolationFactor = f32(1 - f32(ramp));
    const extrapolation = f32(1 / posFreqs[i]);
    const interpolation = f32(1 / f32(s.factor * posFreqs[i]));
    invFreq[i] = f32(
      f32(interpolation * f32(1 - extrapolationFactor)) + f32(extrapolation * extrapolationFactor),
    );
  }
  return { invFreq, attentionScaling };
}

/** cos and sin tables for a run of positions, each [positions.length, headDim / 2]. */
export interface RopeTables {
  cos: Float32Array;
  sin: Float32Array;
}

/**
 * cos/sin of position × inverse frequency, times the attention scaling, for each position.
 * Only the first half of HF's duplicated [cos, cos] layout is stored; the rotation applies
 * it to dims i and i + headDim/2 (HF's rotate_half convention).
 */
export function ropeTables(freqs: RopeFrequencies, positions: Int32Array): RopeTables {
  const half = freqs.invFreq.length;
  const cos = new Float32Array(positions.length * half);
  const sin = new Float32Array(positions.length * half);
  const scale = freqs.attentionScaling;
  for (let t = 0; t < positions.length; t++) {
    const pos = positions[t];
    for (let i = 0; i < half; i++) {
      const angle = f32(freqs.invFreq[i] * pos);
      cos[t * half + i] = f32(f32(Math.cos(angle)) * scale);
      sin[t * half + i] = f32(f32(Math.sin(angle)) * scale);
    }
  }
  return { cos, sin };
}

/**
 * Rotate `x` in place: x is [T, heads, headDim], tables are [T, headDim / 2].
 * out_i = x_i·cos − x_{i+h}·sin, out_{i+h} = x_{i+h}·cos + x_i·sin, with h = headDim / 2.
 */
export function applyRope(
  x: Float32Array,
  tables: RopeTables,
  shape: { tokens: number; heads: number; headDim: number },
): void {
  const half = shape.headDim / 2;
  for (let t = 0; t < shape.tokens; t++) {
    const row = t * half;
    for (let h = 0; h < shape.heads; h++) {
      const base = (t * shape.heads + h) * shape.headDim;
      for (let i = 0; i < half; i++) {
        const c = tables.cos[row + i];
        const s = tables.sin[row + i];
        const a = x[base + i];
        const b = x[base + half + i];
        x[base + i] = a * c - b * s;
        x[base + half + i] = b * c + a * s;
      }
    }
  }
}
