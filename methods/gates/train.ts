/**
 * Gate training (spec §2.2–2.3): every gated layer's gate is fit to its layer's KVzip targets
 * with soft-target BCE (mean over tokens, sum over heads; the layers' losses add up, and since
 * gates share nothing each layer's gradient is its own loss's). SGD with momentum 0.9, base lr
 * 0.2 under the official step schedule, batches of 1000 random training tokens, a fresh
 * permutation every epoch, 5000 steps, seed 0. Validation = every 100th token (1-based global
 * index divisible by 100), evaluated every 50 steps with the loss and the accuracy at 0.05.
 *
 * Per layer and step the work splits three ways, each a function a GPU version can mirror:
 * 1. projections a = X W_qᵀ + b_q, c = X W_kᵀ — onnxruntime, weights as graph inputs;
 * 2. the per-token loss and hand-derived gradients (gradient.ts) — plain loops, O(B·H·G·S·d);
 * 3. weight gradients dW_q = dAᵀX, db_q = Σ dA, dW_k = dCᵀX — onnxruntime;
 * then the SGD update in place.
 *
 * A checkpoint (gates + momentum buffers + step + history, one safetensors file) is written
 * every `checkpointEvery` steps; `resume` continues from it exactly (the epoch permutations are
 * a pure function of the seed and the epoch).
 *
 * @module
 */

import { InputError } from "../../errors.ts";
import { openSafetensors, type TensorToWrite } from "../../engine/safetensors.ts";
import { GraphBuilder } from "../../kernels/onnx/graph.ts";
import { createSession, type OrtSession, readF32, tensorF32 } from "../../kernels/ort.ts";
import { seededRandom } from "../../kernels/random.ts";
import {
  DEFAULT_GATE_DIM,
  DEFAULT_GATE_SINKS,
  type GateDims,
  type GateLayerWeights,
  gateParamSpecs,
  gateProjections,
  type GateSet,
  initGateSet,
} from "./gate.ts";
import { gateTensorName, readGateFile, writeGateFile } from "./gate_file.ts";
import {
  gateLossAndGrads,
  lrMultiplier,
  type ProjectionGrads,
  projectionGrads,
} from "./gradient.ts";
import type { FeatureBatch, FeatureSet } from "./features.ts";

/** Options of {@linkcode trainGates}, with the official defaults. */
export interface TrainOptions {
  /** Optimisation steps; default 5000. */
  steps?: number;
  /** Training tokens per step; default 1000. */
  batchSize?: number;
  /** Base learning rate; default 0.2. */
  lr?: number;
  /** SGD momentum; default 0.9. */
  momentum?: number;
  /** Seeds the initialisation and the epoch permutations; default 0. */
  seed?: number;
  /** Gate head dimension d; default 16. */
  gateDim?: number;
  /** Sink keys S; default 16. */
  sinks?: number;
  /** Validate every this many steps (and after the last); default 50. */
  validationEvery?: number;
  /** Tokens whose 1-based global index is divisible by this are validation; default 100. */
  validationStride?: number;
  /** Checkpoint file; none when absent. */
  checkpoint?: string;
  /** Checkpoint every this many steps (and after the last); default 500. */
  checkpointEvery?: number;
  /** Continue from `checkpoint`. */
  resume?: boolean;
  /** Heavy matmuls through onnxruntime ("ort", default) or plain loops ("ts", for tests). */
  matmul?: "ort" | "ts";
  threads?: number;
  /** Called after every step. */
  onStep?: (log: StepLog) => void;
}

/** What one step reports. */
export interface StepLog {
  /** 1-based count of steps done. */
  step: number;
  steps: number;
  /** Training loss on this step's batch (before the update), mean over layers of Σ_h mean_t BCE. */
  loss: number;
  /** Training accuracy at 0.05 on the batch, mean over layers. */
  accuracy: number;
  lr: number;
  /** Present on validation steps. */
  validation?: { loss: number; accuracy: number };
  /** Steps per second since this run (or resume) started. */
  stepsPerSecond: number;
}

/** One validation point of the history. */
export interface HistoryPoint {
  step: number;
  loss: number;
  accuracy: number;
  validationLoss: number;
  validationAccuracy: number;
}

/** What {@linkcode trainGates} returns. */
export interface TrainResult {
  gates: GateSet;
  history: HistoryPoint[];
  /** Steps run by this call (fewer than `steps` after a resume). */
  stepsRun: number;
  stepsPerSecond: number;
  trainTokens: number;
  validationTokens: number;
}

/** The matmuls of one step, on any backend. */
interface Projector {
  forward(w: GateLayerWeights, x: Float32Array): Promise<{ a: Float32Array; c: Float32Array }>;
  backward(
    batch: { x: Float32Array; dA: Float32Array; dC: Float32Array },
  ): Promise<ProjectionGrads>;
  release(): Promise<void>;
}

function tsProjector(dims: GateDims): Projector {
  return {
    forward: (weights, x) => Promise.resolve(gateProjections({ dims, weights }, x)),
    backward: (batch) => Promise.resolve(projectionGrads(dims, batch)),
    release: () => Promise.resolve(),
  };
}

/** Forward and backward projection graphs with the weights as inputs (they change every step). */
async function ortProjector(dims: GateDims, threads?: number): Promise<Projector> {
  const { hiddenSize: D, numKvHeads: H, group: G, gateDim: d } = dims;
  const nq = H * G * d;
  const nk = H * d;
  const f = new GraphBuilder("gate_projections");
  const x = f.input("x", "float32", ["B", D]);
  const a = f.gemm(x, f.input("wq", "float32", [nq, D]), f.input("bq", "float32", [nq]));
  const c = f.gemm(x, f.input("wk", "float32", [nk, D]));
  f.output(a, { name: "a", dataType: "float32", shape: ["B", nq] });
  f.output(c, { name: "c", dataType: "float32", shape: ["B", nk] });
  const b = new GraphBuilder("gate_projection_grads");
  const bx = b.input("x", "float32", ["B", D]);
  const da = b.input("da", "float32", ["B", nq]);
  const dc = b.input("dc", "float32", ["B", nk]);
  b.output(b.node("Gemm", [da, bx], { transA: { int: 1 } }), {
    name: "gwq",
    dataType: "float32",
    shape: [nq, D],
  });
  b.output(b.reduce("ReduceSum", da, [0], { keepdims: false }), {
    name: "gbq",
    dataType: "float32",
    shape: [nq],
  });
  b.output(b.node("Gemm", [dc, bx], { transA: { int: 1 } }), {
    name: "gwk",
    dataType: "float32",
    shape: [nk, D],
  });
  const fwd: OrtSession = await createSession(f.build(), { name: f.name, threads });
  const bwd: OrtSession = await createSession(b.build(), { name: b.name, threads });
  return {
    async forward(w, xs) {
      const tokens = xs.length / D;
      const out = await fwd.run({
        x: tensorF32(xs, [tokens, D]),
        wq: tensorF32(w.qWeight, [nq, D]),
        bq: tensorF32(w.qBias, [nq]),
        wk: tensorF32(w.kWeight, [nk, D]),
      });
      return { a: readF32(out.a), c: readF32(out.c) };
    },
    async backward(batch) {
      const B = batch.x.length / D;
      const out = await bwd.run({
        x: tensorF32(batch.x, [B, D]),
        da: tensorF32(batch.dA, [B, nq]),
        dc: tensorF32(batch.dC, [B, nk]),
      });
      return { qWeight: readF32(out.gwq), qBias: readF32(out.gbq), kWeight: readF32(out.gwk) };
    },
    async release() {
      await fwd.release();
      await bwd.release();
    },
  };
}

/** Training and validation token indices (global) under the 1-in-`stride` rule. */
export function splitTokens(
  total: number,
  stride: number,
): { train: Int32Array; validation: Int32Array } {
  const validation = new Int32Array(Math.floor(total / stride));
  const train = new Int32Array(total - validation.length);
  let v = 0;
  let t = 0;
  for (let g = 0; g < total; g++) {
    if ((g + 1) % stride === 0) validation[v++] = g;
    else train[t++] = g;
  }
  return { train, validation };
}

/** The permutation of epoch `epoch` (Fisher–Yates from a seed of (seed, epoch)). */
export function epochPermutation(n: number, run: { seed: number; epoch: number }): Int32Array {
  const { seed, epoch } = run;
  const uniform = seededRandom(((seed + 1) * 0x9e3779b1 + epoch * 0x85ebca77) >>> 0);
  const perm = Int32Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(uniform() * (i + 1));
    const tmp = perm[i];
    perm[i] = perm[j];
    perm[j] = tmp;
  }
  return perm;
}

type ParamField = Exclude<keyof GateLayerWeights, "layer">;

/** Momentum buffers, one per parameter of every layer. */
type Momentum = Record<ParamField, Float32Array>[];

function zeroMomentum(gates: GateSet): Momentum {
  return gates.layers.map((w) => {
    const m = {} as Record<ParamField, Float32Array>;
    for (const spec of gateParamSpecs(gates.dims)) {
      m[spec.field] = new Float32Array(w[spec.field].length);
    }
    return m;
  });
}

/** torch.optim.SGD with momentum, no dampening: buf = μ·buf + g; p −= lr·buf. */
function sgdStep(
  param: Float32Array,
  grad: ArrayLike<number>,
  buf: Float32Array,
  h: { lr: number; momentum: number },
): void {
  for (let i = 0; i < param.length; i++) {
    const v = h.momentum * buf[i] + grad[i];
    buf[i] = v;
    param[i] -= h.lr * v;
  }
}

/** Fingerprint of what a checkpoint must agree with to be resumed. */
function runKey(
  features: FeatureSet,
  o: Required<Omit<TrainOptions, "checkpoint" | "resume" | "matmul" | "threads" | "onStep">>,
): string {
  return JSON.stringify({
    features: { ...features.settings, tokens: features.tokens },
    steps: o.steps,
    batchSize: o.batchSize,
    lr: o.lr,
    momentum: o.momentum,
    seed: o.seed,
    gateDim: o.gateDim,
    sinks: o.sinks,
    validationStride: o.validationStride,
  });
}

/** What differs between two run keys, in words: "--steps (4000, now 4001)" or "features". */
function runKeyDifference(saved: string | undefined, now: string): string {
  const flags: Record<string, string> = {
    steps: "--steps",
    batchSize: "--batch-size",
    lr: "--lr",
    seed: "--seed",
    gateDim: "--gate-dim",
    sinks: "--sinks",
    validationStride: "--validation-stride",
    momentum: "momentum",
  };
  let old: Record<string, unknown>;
  try {
    old = JSON.parse(saved ?? "{}");
  } catch {
    return "options";
  }
  const current = JSON.parse(now) as Record<string, unknown>;
  const differing = Object.keys(current).filter((k) =>
    JSON.stringify(old[k]) !== JSON.stringify(current[k])
  );
  if (differing.length === 0) return "options";
  return differing.map((k) =>
    k === "features"
      ? "features (the corpus, the model or the extraction options)"
      : `${flags[k] ?? k} (${JSON.stringify(old[k])}, now ${JSON.stringify(current[k])})`
  ).join(", ");
}

/**
 * Train gates on a features directory.
 *
 * @example
 * ```ts
 * const set = await FeatureSet.open("qwen3.features");
 * const { gates } = await trainGates(set, { steps: 5000, checkpoint: "gates.ckpt" });
 * ```
 */
export async function trainGates(
  features: FeatureSet,
  options: TrainOptions = {},
): Promise<TrainResult> {
  const o = {
    steps: options.steps ?? 5000,
    batchSize: options.batchSize ?? 1000,
    lr: options.lr ?? 0.2,
    momentum: options.momentum ?? 0.9,
    seed: options.seed ?? 0,
    gateDim: options.gateDim ?? DEFAULT_GATE_DIM,
    sinks: options.sinks ?? DEFAULT_GATE_SINKS,
    validationEvery: options.validationEvery ?? 50,
    validationStride: options.validationStride ?? 100,
    checkpointEvery: options.checkpointEvery ?? 500,
  };
  for (const [key, value] of Object.entries(o)) {
    const positive = key === "lr" || key === "momentum"
      ? value >= 0
      : Number.isInteger(value) && value >= 1;
    if (key !== "seed" && !positive) {
      throw new InputError(`train-gate: ${key} must be positive, got ${value}`);
    }
  }
  const s = features.settings;
  const dims: GateDims = {
    hiddenSize: s.hiddenSize,
    numKvHeads: s.numKvHeads,
    group: s.group,
    gateDim: o.gateDim,
    sinks: o.sinks,
  };
  const { train, validation } = splitTokens(features.tokens, o.validationStride);
  if (train.length === 0) throw new InputError(`train-gate: the features hold no training tokens`);
  if (validation.length === 0) {
    throw new InputError(
      `train-gate: the features hold ${features.tokens} tokens, too few for one validation token ` +
        `(every ${o.validationStride}th token is held out): give a longer corpus or a smaller ` +
        "--validation-stride",
    );
  }
  const batch = Math.min(o.batchSize, train.length);
  const perEpoch = Math.max(1, Math.floor(train.length / batch));
  const key = runKey(features, o);

  let gates = initGateSet(dims, s.layers, { seed: o.seed });
  let momentum = zeroMomentum(gates);
  let start = 0;
  let history: HistoryPoint[] = [];
  if (options.resume) {
    if (options.checkpoint === undefined) {
      throw new InputError("train-gate: --resume needs a checkpoint file");
    }
    const restored = await readCheckpoint(options.checkpoint, key);
    gates = restored.gates;
    momentum = restored.momentum;
    start = restored.step;
    history = restored.history;
  }

  const projector = options.matmul === "ts"
    ? tsProjector(dims)
    : await ortProjector(dims, options.threads);
  const t0 = performance.now();
  let perm: Int32Array | null = null;
  let permEpoch = -1;
  const indices = new Int32Array(batch);
  try {
    for (let i = start; i < o.steps; i++) {
      const epoch = Math.floor(i / perEpoch);
      if (epoch !== permEpoch) {
        perm = epochPermutation(train.length, { seed: o.seed, epoch });
        permEpoch = epoch;
      }
      const split = i % perEpoch;
      for (let b = 0; b < batch; b++) indices[b] = train[perm![split * batch + b]];
      const data = features.gather(indices);
      const lr = o.lr * lrMultiplier(i, o.steps);
      let loss = 0;
      let agree = 0;
      for (let l = 0; l < gates.layers.length; l++) {
        const w = gates.layers[l];
        const { a, c } = await projector.forward(w, data.x[l]);
        const r = gateLossAndGrads({ dims, weights: w }, { a, c, y: data.y[l] }, { grads: true });
        const proj = await projector.backward({
          x: data.x[l],
          dA: r.dA!,
          dC: r.dC!,
        });
        const m = momentum[l];
        const h = { lr, momentum: o.momentum };
        sgdStep(w.qWeight, proj.qWeight, m.qWeight, h);
        sgdStep(w.qBias, proj.qBias, m.qBias, h);
        sgdStep(w.kWeight, proj.kWeight, m.kWeight, h);
        sgdStep(w.qNorm, r.small!.qNorm, m.qNorm, h);
        sgdStep(w.kNorm, r.small!.kNorm, m.kNorm, h);
        sgdStep(w.kBase, r.small!.kBase, m.kBase, h);
        sgdStep(w.bias, r.small!.bias, m.bias, h);
        loss += r.loss;
        agree += r.agree / r.count;
      }
      const L = gates.layers.length;
      const step = i + 1;
      const log: StepLog = {
        step,
        steps: o.steps,
        loss: loss / L,
        accuracy: agree / L,
        lr,
        stepsPerSecond: (step - start) / ((performance.now() - t0) / 1000),
      };
      if (i % o.validationEvery === 0 || step === o.steps) {
        log.validation = await evaluate(features, gates, { indices: validation, batch, projector });
        history.push({
          step,
          loss: log.loss,
          accuracy: log.accuracy,
          validationLoss: log.validation.loss,
          validationAccuracy: log.validation.accuracy,
        });
      }
      options.onStep?.(log);
      if (
        options.checkpoint !== undefined && (step % o.checkpointEvery === 0 || step === o.steps)
      ) {
        await writeCheckpoint(options.checkpoint, { gates, momentum, step, history, key });
      }
    }
  } finally {
    await projector.release();
  }
  const seconds = (performance.now() - t0) / 1000;
  return {
    gates,
    history,
    stepsRun: o.steps - start,
    stepsPerSecond: (o.steps - start) / seconds,
    trainTokens: train.length,
    validationTokens: validation.length,
  };
}

/**
 * Loss and accuracy of `gates` on the tokens `indices`, mean over layers (each layer's loss is
 * Σ_h mean_t BCE over all the tokens).
 */
async function evaluate(
  features: FeatureSet,
  gates: GateSet,
  job: { indices: Int32Array; batch: number; projector: Projector },
): Promise<{ loss: number; accuracy: number }> {
  const L = gates.layers.length;
  const n = job.indices.length;
  if (n === 0) return { loss: NaN, accuracy: NaN };
  const loss = new Float64Array(L);
  const agree = new Float64Array(L);
  for (let from = 0; from < n; from += job.batch) {
    const part = job.indices.subarray(from, Math.min(n, from + job.batch));
    const data: FeatureBatch = features.gather(part);
    for (let l = 0; l < L; l++) {
      const w = gates.layers[l];
      const { a, c } = await job.projector.forward(w, data.x[l]);
      const r = gateLossAndGrads({ dims: gates.dims, weights: w }, { a, c, y: data.y[l] });
      loss[l] += r.loss * part.length;
      agree[l] += r.agree;
    }
  }
  const H = gates.dims.numKvHeads;
  let meanLoss = 0;
  let meanAcc = 0;
  for (let l = 0; l < L; l++) {
    meanLoss += loss[l] / n / L;
    meanAcc += agree[l] / (n * H) / L;
  }
  return { loss: meanLoss, accuracy: meanAcc };
}

/**
 * Evaluate `gates` on the validation tokens of `features` (the same split as training).
 *
 * @example
 * ```ts
 * const { loss, accuracy } = await validateGates(set, gates);
 * ```
 */
export async function validateGates(
  features: FeatureSet,
  gates: GateSet,
  options: {
    validationStride?: number;
    batchSize?: number;
    threads?: number;
    matmul?: "ort" | "ts";
  } = {},
): Promise<{ loss: number; accuracy: number }> {
  const { validation } = splitTokens(features.tokens, options.validationStride ?? 100);
  const projector = options.matmul === "ts"
    ? tsProjector(gates.dims)
    : await ortProjector(gates.dims, options.threads);
  try {
    return await evaluate(features, gates, {
      indices: validation,
      batch: options.batchSize ?? 1000,
      projector,
    });
  } finally {
    await projector.release();
  }
}

const CHECKPOINT_KIND = "evictbench-gate-checkpoint";

async function writeCheckpoint(
  path: string,
  state: { gates: GateSet; momentum: Momentum; step: number; history: HistoryPoint[]; key: string },
): Promise<void> {
  const extra: Record<string, TensorToWrite> = {};
  const specs = gateParamSpecs(state.gates.dims);
  state.gates.layers.forEach((w, l) => {
    for (const spec of specs) {
      extra[`momentum.${gateTensorName(w.layer, spec.name)}`] = {
        dtype: "F32",
        shape: spec.shape,
        data: state.momentum[l][spec.field],
      };
    }
  });
  await writeGateFile(path, state.gates, {
    extra,
    metadata: {
      checkpoint: CHECKPOINT_KIND,
      step: String(state.step),
      run: state.key,
      history: JSON.stringify(state.history),
    },
  });
}

async function readCheckpoint(
  path: string,
  key: string,
): Promise<{ gates: GateSet; momentum: Momentum; step: number; history: HistoryPoint[] }> {
  const { gates, metadata } = await readGateFile(path);
  if (metadata.checkpoint !== CHECKPOINT_KIND) {
    throw new InputError(`${path}: not a train-gate checkpoint (no checkpoint metadata)`);
  }
  if (metadata.run !== key) {
    throw new InputError(
      `${path}: the checkpoint was made with other ${runKeyDifference(metadata.run, key)}; ` +
        "resume with the same ones or start afresh",
    );
  }
  const step = Number(metadata.step);
  let history: HistoryPoint[];
  try {
    history = JSON.parse(metadata.history);
  } catch {
    throw new InputError(`${path}: checkpoint history is not valid JSON`);
  }
  const momentum = zeroMomentum(gates);
  const file = await openSafetensors(path);
  try {
    const specs = gateParamSpecs(gates.dims);
    for (let l = 0; l < gates.layers.length; l++) {
      for (const spec of specs) {
        const name = `momentum.${gateTensorName(gates.layers[l].layer, spec.name)}`;
        if (!file.has(name)) throw new InputError(`${path}: checkpoint tensor ${name} is missing`);
        const values = await file.readF32(name);
        if (values.length !== momentum[l][spec.field].length) {
          throw new InputError(`${path}: checkpoint tensor ${name} has the wrong size`);
        }
        momentum[l][spec.field] = values;
      }
    }
  } finally {
    file.close();
  }
  return { gates, momentum, step, history };
}
