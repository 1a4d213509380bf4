/**
 * The hand-derived gradients of gradient.ts against central finite differences of the loss,
 * for every kind of parameter (projection weights and bias, both norm weights, sink keys, the
 * logit bias), plus the loss value itself against a direct BCE of the forward's scores, and the
 * learning-rate schedule.
 */

import { assert, assertAlmostEquals, assertEquals } from "../../tests/assert.ts";
import { seededNormal, seededRandom } from "../../kernels/random.ts";
import {
  type GateDims,
  gateForward,
  type GateLayerWeights,
  gateProjections,
  randomGates,
} from "./gate.ts";
import { gateLossAndGrads, lrMultiplier, projectionGrads } from "./gradient.ts";

const DIMS: GateDims = { hiddenSize: 12, numKvHeads: 2, group: 2, gateDim: 4, sinks: 3 };
const B = 7;

function batch(seed: number): { x: Float32Array; y: Float32Array } {
  const normal = seededNormal(seed);
  const uniform = seededRandom(seed + 1);
  const x = Float32Array.from({ length: B * DIMS.hiddenSize }, () => normal());
  // Soft targets across the range, some exactly 0 as KVzip gives for far-away tokens.
  const y = Float32Array.from(
    { length: B * DIMS.numKvHeads },
    (_, i) => (i % 5 === 0 ? 0 : uniform() ** 2),
  );
  return { x, y };
}

function lossOf(w: GateLayerWeights, x: Float32Array, y: Float32Array): number {
  const { a, c } = gateProjections({ dims: DIMS, weights: w }, x);
  return gateLossAndGrads({ dims: DIMS, weights: w }, { a, c, y }).loss;
}

Deno.test("the loss is Σ_h mean_t BCE of the forward's scores", () => {
  const w = randomGates(DIMS, { layers: [0], seed: 3 }).layers[0];
  const { x, y } = batch(4);
  const scores = gateForward({ dims: DIMS, weights: w }, x); // [H, B]
  let want = 0;
  for (let h = 0; h < DIMS.numKvHeads; h++) {
    for (let t = 0; t < B; t++) {
      const p = scores[h * B + t];
      const target = y[t * DIMS.numKvHeads + h];
      want -= (target * Math.log(p) + (1 - target) * Math.log(1 - p)) / B;
    }
  }
  assertAlmostEquals(lossOf(w, x, y), want, 1e-6);
});

Deno.test("hand-derived gradients match central finite differences", () => {
  const gates = randomGates(DIMS, { layers: [0], seed: 9 });
  const w = gates.layers[0];
  const { x, y } = batch(10);
  const { a, c } = gateProjections({ dims: DIMS, weights: w }, x);
  const r = gateLossAndGrads({ dims: DIMS, weights: w }, { a, c, y }, { grads: true });
  const proj = projectionGrads(DIMS, { x, dA: r.dA!, dC: r.dC! });
  const analytic: Record<string, ArrayLike<number>> = {
    qWeight: proj.qWeight,
    qBias: proj.qBias,
    kWeight: proj.kWeight,
    qNorm: r.small!.qNorm,
    kNorm: r.small!.kNorm,
    kBase: r.small!.kBase,
    bias: r.small!.bias,
  };
  const eps = 1e-3;
  let checked = 0;
  for (const field of Object.keys(analytic) as (keyof typeof analytic)[]) {
    const param = w[field as keyof GateLayerWeights] as Float32Array;
    // Every element of the small tensors, a stride through the big ones.
    const step = param.length > 40 ? 7 : 1;
    for (let i = 0; i < param.length; i += step) {
      const saved = param[i];
      param[i] = saved + eps;
      const up = lossOf(w, x, y);
      param[i] = saved - eps;
      const down = lossOf(w, x, y);
      param[i] = saved;
      // The perturbation as actually stored in f32.
      const h = Math.fround(saved + eps) - Math.fround(saved - eps);
      const numeric = (up - down) / h;
      const got = analytic[field][i];
      const err = Math.abs(got - numeric) / Math.max(Math.abs(numeric), 1e-3);
      assert(err < 2e-3, `${field}[${i}]: analytic ${got}, numeric ${numeric} (rel err ${err})`);
      checked++;
    }
  }
  assert(checked > 80, `checked ${checked} elements`);
});

Deno.test("accuracy counts agreement at the 0.05 threshold", () => {
  const w = randomGates(DIMS, { layers: [0], seed: 1 }).layers[0];
  const { x } = batch(2);
  const scores = gateForward({ dims: DIMS, weights: w }, x);
  const y = new Float32Array(B * DIMS.numKvHeads);
  let want = 0;
  for (let t = 0; t < B; t++) {
    for (let h = 0; h < DIMS.numKvHeads; h++) {
      y[t * DIMS.numKvHeads + h] = t % 2 === 0 ? 0.5 : 0.01;
      if ((scores[h * B + t] >= 0.05) === (t % 2 === 0)) want++;
    }
  }
  const { a, c } = gateProjections({ dims: DIMS, weights: w }, x);
  const r = gateLossAndGrads({ dims: DIMS, weights: w }, { a, c, y });
  assertEquals([r.agree, r.count], [want, B * DIMS.numKvHeads]);
});

Deno.test("the learning-rate schedule of the official trainer", () => {
  assertEquals([0, 10, 49].map((i) => lrMultiplier(i, 5000)), [0, 0.1, 0.49]);
  assertEquals([50, 2499, 2500, 3749, 3750, 4999].map((i) => lrMultiplier(i, 5000)), [
    1,
    1,
    0.5,
    0.5,
    0.25,
    0.25,
  ]);
  // Longer runs scale the ramp with the schedule: it never passes 0.5, then jumps to 1.
  assertEquals([0, 100, 199, 200].map((i) => lrMultiplier(i, 20000)), [0, 0.25, 0.4975, 1]);
});
