/**
 * The gate's training loss and its gradients, derived by hand (no autodiff), for one layer and
 * one batch of B tokens. The projections a = X W_qᵀ + b_q and c = X W_kᵀ come in precomputed
 * (they are the heavy matmuls, done by onnxruntime in train.ts); this module does the per-token
 * math and returns the gradients with respect to a and c, from which the caller forms
 * ∂ℓ/∂W_q = dAᵀX, ∂ℓ/∂b_q = Σ_t dA_t and ∂ℓ/∂W_k = dCᵀX.
 *
 * Forward, per token t (dropped below), KV head h, group member g, sink j, with d the gate dim:
 *
 *   r^q_hg = (‖a_hg‖²/d + ε)^(-1/2)   n^q_hg = r^q_hg a_hg    q_hg = n^q_hg ⊙ w_q
 *   r^k_h  = (‖c_h‖²/d + ε)^(-1/2)    n^k_h  = r^k_h c_h      k_h  = n^k_h ⊙ w_k
 *   s_hg = k_h·q_hg/√d + b_hg          z_hgj = κ_hj·q_hg/√d     (κ = k_base)
 *   Λ_hg = logsumexp_j z_hgj           u_hg = s_hg − Λ_hg       p_hg = σ(u_hg)
 *   P_h  = (1/G) Σ_g p_hg
 *   ℓ = Σ_h (1/B) Σ_t BCE(P_th, y_th),   BCE(P, y) = −[y ln P + (1−y) ln(1−P)]
 *
 * Backward (every sum over t runs over the batch):
 *
 *   e_th   = ∂ℓ/∂P_th = (P − y) / (B · P(1−P))                  (P(1−P) floored at 1e-12)
 *   δ_hg   = ∂ℓ/∂u_hg = e_th · p_hg(1 − p_hg) / G
 *   ∂ℓ/∂b_hg   = Σ_t δ_hg
 *   π_hgj  = softmax_j z_hg                                      (∂Λ/∂z = π)
 *   ∂ℓ/∂q_hg   = δ_hg (k_h − Σ_j π_hgj κ_hj) / √d
 *   ∂ℓ/∂k_h    = Σ_g δ_hg q_hg / √d
 *   ∂ℓ/∂κ_hj   = −Σ_t Σ_g δ_hg π_hgj q_hg / √d
 *   RMSNorm, for out = n ⊙ w with n = r v and upstream gradient γ:
 *     ∂ℓ/∂w += γ ⊙ n,   γ_n = γ ⊙ w,   ∂ℓ/∂v = r (γ_n − n (n·γ_n)/d)
 *   which gives ∂ℓ/∂a_hg (rows of dA) from ∂ℓ/∂q_hg and ∂ℓ/∂c_h (rows of dC) from ∂ℓ/∂k_h,
 *   and the norm weights' gradients ∂ℓ/∂w_q = Σ_t Σ_h Σ_g ∂ℓ/∂q_hg ⊙ n^q_hg (likewise w_k).
 *
 * The loss follows torch's binary_cross_entropy: each log is clamped at −100.
 *
 * @module
 */

import { GATE_NORM_EPS, type GateDims, type LayerGate } from "./gate.ts";

/** Threshold of the "accuracy" the official trainer logs: (p ≥ 0.05) == (y ≥ 0.05). */
export const ACCURACY_THRESHOLD = 0.05;

/** Gradients of the small parameters of one layer's gate (f64 accumulators). */
export interface SmallGrads {
  qNorm: Float64Array;
  kNorm: Float64Array;
  /** [H, S, d]. */
  kBase: Float64Array;
  /** [H, G]. */
  bias: Float64Array;
}

/** Loss, accuracy and (when asked) gradients of one layer on one batch. */
export interface LayerBatchResult {
  /** Σ_h mean_t BCE. */
  loss: number;
  /** Tokens × heads whose prediction and target fall on the same side of 0.05. */
  agree: number;
  /** Tokens × heads counted. */
  count: number;
  /** ∂ℓ/∂a [B, H·G·d] (absent without gradients). */
  dA?: Float32Array;
  /** ∂ℓ/∂c [B, H·d]. */
  dC?: Float32Array;
  small?: SmallGrads;
}

/**
 * Loss of one layer's gate on a batch, and its gradients when `options.grads`.
 * a [B, H·G·d] and c [B, H·d] are the projections, y [B, H] the targets.
 *
 * @example
 * ```ts
 * const r = gateLossAndGrads({ dims, weights }, { a, c, y }, { grads: true });
 * ```
 */
export function gateLossAndGrads(
  gate: LayerGate,
  batch: { a: Float32Array; c: Float32Array; y: Float32Array },
  options: { grads?: boolean } = {},
): LayerBatchResult {
  const { dims, weights: w } = gate;
  const { numKvHeads: H, group: G, gateDim: d, sinks: S } = dims;
  const { a, c, y } = batch;
  const B = y.length / H;
  const grads = options.grads ?? false;
  const inv = 1 / Math.sqrt(d);
  const dA = grads ? new Float32Array(B * H * G * d) : undefined;
  const dC = grads ? new Float32Array(B * H * d) : undefined;
  const small: SmallGrads | undefined = grads
    ? {
      qNorm: new Float64Array(d),
      kNorm: new Float64Array(d),
      kBase: new Float64Array(H * S * d),
      bias: new Float64Array(H * G),
    }
    : undefined;

  // Per (t, h) scratch: the G queries, their normalised forms, sink softmaxes and p's.
  const nk = new Float64Array(d);
  const k = new Float64Array(d);
  const nq = new Float64Array(G * d);
  const q = new Float64Array(G * d);
  const rq = new Float64Array(G);
  const pi = new Float64Array(G * S);
  const p = new Float64Array(G);
  const gq = new Float64Array(d);
  const gk = new Float64Array(d);
  let loss = 0;
  let agree = 0;

  for (let t = 0; t < B; t++) {
    for (let h = 0; h < H; h++) {
      const cOff = (t * H + h) * d;
      const rk = rms(c, cOff, d);
      for (let j = 0; j < d; j++) {
        nk[j] = c[cOff + j] * rk;
        k[j] = nk[j] * w.kNorm[j];
      }
      let P = 0;
      for (let g = 0; g < G; g++) {
        const aOff = ((t * H + h) * G + g) * d;
        rq[g] = rms(a, aOff, d);
        let self = 0;
        for (let j = 0; j < d; j++) {
          nq[g * d + j] = a[aOff + j] * rq[g];
          q[g * d + j] = nq[g * d + j] * w.qNorm[j];
          self += k[j] * q[g * d + j];
        }
        self = self * inv + w.bias[h * G + g];
        let max = -Infinity;
        for (let s = 0; s < S; s++) {
          let z = 0;
          const kb = (h * S + s) * d;
          for (let j = 0; j < d; j++) z += w.kBase[kb + j] * q[g * d + j];
          z *= inv;
          pi[g * S + s] = z;
          if (z > max) max = z;
        }
        let sum = 0;
        for (let s = 0; s < S; s++) {
          const e = Math.exp(pi[g * S + s] - max);
          pi[g * S + s] = e;
          sum += e;
        }
        for (let s = 0; s < S; s++) pi[g * S + s] /= sum;
        const u = self - (max + Math.log(sum));
        p[g] = u >= 0 ? 1 / (1 + Math.exp(-u)) : Math.exp(u) / (1 + Math.exp(u));
        P += p[g];
      }
      P /= G;
      const target = y[t * H + h];
      loss -= target * Math.max(Math.log(P), -100) +
        (1 - target) * Math.max(Math.log(1 - P), -100);
      if ((P >= ACCURACY_THRESHOLD) === (target >= ACCURACY_THRESHOLD)) agree++;
      if (!grads) continue;

      const e = (P - target) / (B * Math.max(P * (1 - P), 1e-12));
      gk.fill(0);
      for (let g = 0; g < G; g++) {
        const delta = (e * p[g] * (1 - p[g])) / G;
        small!.bias[h * G + g] += delta;
        // ∂ℓ/∂q = δ (k − Σ_j π_j κ_j)/√d; ∂ℓ/∂κ_j −= δ π_j q/√d; ∂ℓ/∂k += δ q/√d.
        for (let j = 0; j < d; j++) gq[j] = k[j];
        for (let s = 0; s < S; s++) {
          const ps = pi[g * S + s];
          const kb = (h * S + s) * d;
          const scale = delta * ps * inv;
          for (let j = 0; j < d; j++) {
            gq[j] -= ps * w.kBase[kb + j];
            small!.kBase[kb + j] -= scale * q[g * d + j];
          }
        }
        for (let j = 0; j < d; j++) {
          gq[j] *= delta * inv;
          gk[j] += delta * inv * q[g * d + j];
        }
        rmsNormBackward(gq, {
          n: nq,
          nOffset: g * d,
          r: rq[g],
          weight: w.qNorm,
          weightGrad: small!.qNorm,
          out: dA!,
          outOffset: ((t * H + h) * G + g) * d,
        });
      }
      rmsNormBackward(gk, {
        n: nk,
        nOffset: 0,
        r: rk,
        weight: w.kNorm,
        weightGrad: small!.kNorm,
        out: dC!,
        outOffset: cOff,
      });
    }
  }
  return { loss: loss / B, agree, count: B * H, dA, dC, small };
}

function rms(v: Float32Array, off: number, d: number): number {
  let ms = 0;
  for (let j = 0; j < d; j++) ms += v[off + j] * v[off + j];
  return 1 / Math.sqrt(ms / d + GATE_NORM_EPS);
}

/** Backward of out = (r v) ⊙ w given γ = ∂ℓ/∂out; writes ∂ℓ/∂v, accumulates ∂ℓ/∂w. */
function rmsNormBackward(
  gamma: Float64Array,
  io: {
    n: Float64Array;
    nOffset: number;
    r: number;
    weight: Float32Array;
    weightGrad: Float64Array;
    out: Float32Array;
    outOffset: number;
  },
): void {
  const { n, nOffset, r, weight, weightGrad, out, outOffset } = io;
  const d = gamma.length;
  let dot = 0;
  for (let j = 0; j < d; j++) {
    const nj = n[nOffset + j];
    weightGrad[j] += gamma[j] * nj;
    dot += gamma[j] * weight[j] * nj;
  }
  for (let j = 0; j < d; j++) {
    out[outOffset + j] = r * (gamma[j] * weight[j] - (n[nOffset + j] * dot) / d);
  }
}

/**
 * The learning-rate multiplier of the official schedule at step `i` of `maxSteps` (utils.py):
 * a linear ramp during the first 1 % of steps, then 1, 0.5 from 50 %, 0.25 from 75 %. For the
 * official 5000 steps: 0.01·i below 50, 1 to 2500, 0.5 to 3750, 0.25 after. utils.py writes the
 * ramp as 0.01·i, which passes 1 in the warm-up of a run longer than 10 000 steps (1.78 at step
 * 178 of 20 000); here it is 50·i / maxSteps, the same at 5000 steps and always below 0.5.
 *
 * @example
 * ```ts
 * lrMultiplier(10, 5000); // 0.1
 * lrMultiplier(199, 20000); // 0.4975
 * ```
 */
export function lrMultiplier(i: number, maxSteps: number): number {
  if (i < 0.01 * maxSteps) return (50 * i) / maxSteps;
  if (i >= 0.75 * maxSteps) return 0.25;
  if (i >= 0.5 * maxSteps) return 0.5;
  return 1;
}

/** Gradients of the projection weights of one layer. */
export interface ProjectionGrads {
  /** ∂ℓ/∂W_q = dAᵀX [H·G·d, D]. */
  qWeight: Float32Array;
  /** ∂ℓ/∂b_q = Σ_t dA_t [H·G·d]. */
  qBias: Float32Array;
  /** ∂ℓ/∂W_k = dCᵀX [H·d, D]. */
  kWeight: Float32Array;
}

/**
 * The projection gradients in plain loops (the reference for the onnxruntime version in
 * train.ts): x [B, D], dA [B, H·G·d], dC [B, H·d].
 *
 * @example
 * ```ts
 * const g = projectionGrads(dims, { x, dA: r.dA!, dC: r.dC! });
 * ```
 */
export function projectionGrads(
  dims: GateDims,
  batch: { x: Float32Array; dA: Float32Array; dC: Float32Array },
): ProjectionGrads {
  const { hiddenSize: D, numKvHeads: H, group: G, gateDim: d } = dims;
  const { x, dA, dC } = batch;
  const B = x.length / D;
  const nq = H * G * d;
  const nk = H * d;
  const qWeight = new Float32Array(nq * D);
  const qBias = new Float32Array(nq);
  const kWeight = new Float32Array(nk * D);
  const acc = new Float64Array(D);
  const outer = (
    rows: number,
    grad: Float32Array,
    out: Float32Array,
    bias: Float32Array | null,
  ) => {
    for (let o = 0; o < rows; o++) {
      acc.fill(0);
      let b = 0;
      for (let t = 0; t < B; t++) {
        const gv = grad[t * rows + o];
        if (gv === 0) continue;
        b += gv;
        const xOff = t * D;
        for (let i = 0; i < D; i++) acc[i] += gv * x[xOff + i];
      }
      for (let i = 0; i < D; i++) out[o * D + i] = acc[i];
      if (bias !== null) bias[o] = b;
    }
  };
  outer(nq, dA, qWeight, qBias);
  outer(nk, dC, kWeight, null);
  return { qWeight, qBias, kWeight };
}
