/**
 * Held-out quality of trained gates: on features extracted from text the gates never trained
 * on, how well gate scores agree with the KVzip targets they imitate.
 *
 * Two figures per gated layer, then averaged over layers:
 * - accuracy at the trainer's 0.05 threshold (spec §2.3): the share of (token, KV head) pairs
 *   where (gate ≥ 0.05) equals (KVzip ≥ 0.05);
 * - Spearman rank correlation of gate scores with KVzip scores over the tokens, per KV head,
 *   averaged over heads. Eviction keeps the top entries, so ranks are what matter.
 *
 * @module
 */

import { gateForward, type GateSet } from "./gate.ts";
import { ACCURACY_THRESHOLD } from "./gradient.ts";
import type { FeatureSet } from "./features.ts";
import { InputError } from "../../errors.ts";

/** One gated layer's held-out figures. */
export interface HeldOutLayer {
  /** The model layer index. */
  layer: number;
  accuracy: number;
  /** Mean over KV heads of the per-head Spearman correlation. */
  spearman: number;
  /** Per KV head. */
  spearmanPerHead: number[];
}

/** Held-out figures of a gate set on a feature set. */
export interface HeldOutReport {
  tokens: number;
  /** Mean over layers. */
  accuracy: number;
  /** Mean over layers (each the mean over its heads). */
  spearman: number;
  layers: HeldOutLayer[];
}

/** Ranks of `values` (0-based; ties share their mean rank). */
export function ranks(values: ArrayLike<number>): Float64Array {
  const order = Array.from({ length: values.length }, (_, i) => i)
    .sort((a, b) => values[a] - values[b]);
  const out = new Float64Array(values.length);
  for (let i = 0; i < order.length;) {
    let j = i;
    while (j + 1 < order.length && values[order[j + 1]] === values[order[i]]) j++;
    for (let k = i; k <= j; k++) out[order[k]] = (i + j) / 2;
    i = j + 1;
  }
  return out;
}

/** Spearman rank correlation of two equally long series (NaN when either is constant). */
export function spearman(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) {
    throw new RangeError(`spearman: series of ${a.length} and ${b.length} values`);
  }
  const ra = ranks(a);
  const rb = ranks(b);
  const n = a.length;
  let ma = 0;
  let mb = 0;
  for (let i = 0; i < n; i++) {
    ma += ra[i] / n;
    mb += rb[i] / n;
  }
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < n; i++) {
    ab += (ra[i] - ma) * (rb[i] - mb);
    aa += (ra[i] - ma) ** 2;
    bb += (rb[i] - mb) ** 2;
  }
  return ab / Math.sqrt(aa * bb);
}

/**
 * Score every token of `features` with `gates` and compare with its KVzip targets.
 * The gate set must cover the same layers and KV heads as the features.
 *
 * @example
 * ```ts
 * const set = await FeatureSet.open("heldout.features");
 * const report = evaluateHeldOut(set, await readGateFile("gates.safetensors"));
 * set.close();
 * ```
 */
export function evaluateHeldOut(
  features: FeatureSet,
  gates: GateSet,
  options: { batch?: number } = {},
): HeldOutReport {
  const { layers, numKvHeads: H, hiddenSize } = features.settings;
  if (gates.layers.length !== layers.length || gates.dims.numKvHeads !== H) {
    throw new InputError(
      `held-out features have ${layers.length} gated layers × ${H} KV heads; the gates ${gates.layers.length} × ${gates.dims.numKvHeads}`,
    );
  }
  if (gates.dims.hiddenSize !== hiddenSize) {
    throw new InputError(
      `held-out features have hidden size ${hiddenSize}; the gates expect ${gates.dims.hiddenSize}`,
    );
  }
  const T = features.tokens;
  const L = layers.length;
  // Per layer and KV head: the gate scores and the KVzip targets of every token.
  const scores = Array.from(
    { length: L },
    () => Array.from({ length: H }, () => new Float32Array(T)),
  );
  const targets = Array.from(
    { length: L },
    () => Array.from({ length: H }, () => new Float32Array(T)),
  );
  const batch = options.batch ?? 1000;
  for (let from = 0; from < T; from += batch) {
    const B = Math.min(T, from + batch) - from;
    const data = features.gather(Int32Array.from({ length: B }, (_, i) => from + i));
    for (let l = 0; l < L; l++) {
      // gateForward gives [H, B]; the targets come as [B, H].
      const p = gateForward({ dims: gates.dims, weights: gates.layers[l] }, data.x[l]);
      for (let h = 0; h < H; h++) {
        scores[l][h].set(p.subarray(h * B, (h + 1) * B), from);
        for (let t = 0; t < B; t++) targets[l][h][from + t] = data.y[l][t * H + h];
      }
    }
  }
  const perLayer: HeldOutLayer[] = [];
  for (let l = 0; l < L; l++) {
    let agree = 0;
    const perHead: number[] = [];
    for (let h = 0; h < H; h++) {
      const s = scores[l][h];
      const y = targets[l][h];
      for (let t = 0; t < T; t++) {
        if ((s[t] >= ACCURACY_THRESHOLD) === (y[t] >= ACCURACY_THRESHOLD)) agree++;
      }
      perHead.push(spearman(s, y));
    }
    perLayer.push({
      layer: layers[l],
      accuracy: agree / (T * H),
      spearman: perHead.reduce((a, b) => a + b, 0) / H,
      spearmanPerHead: perHead,
    });
  }
  return {
    tokens: T,
    accuracy: perLayer.reduce((a, r) => a + r.accuracy, 0) / L,
    spearman: perLayer.reduce((a, r) => a + r.spearman, 0) / L,
    layers: perLayer,
  };
}
