/**
 * Gate training end to end on a tiny random model: it lowers the validation loss, and the
 * trained gates rank a held-out sample's entries much closer to KVzip than a random scorer
 * (Spearman, pooled over layers, heads and tokens, as the global selection pools them). The
 * onnxruntime matmuls train to the same gates as the plain loops; an interrupted run resumed from
 * its checkpoint (momentum included) ends exactly where an uninterrupted one does.
 */

import { assert, assertClose, assertEquals, assertRejects } from "../../tests/assert.ts";
import { InputError } from "../../errors.ts";
import { Model } from "../../engine/model.ts";
import { seededRandom } from "../../kernels/random.ts";
import { gateDimsFor, gatedLayers, gateForward, type GateSet, initGateSet } from "./gate.ts";
import { extractFeatures, FeatureSet, kvzipPrompt, kvzipSample } from "./features.ts";
import { epochPermutation, splitTokens, type StepLog, trainGates, validateGates } from "./train.ts";
import { generatedText, spearman, withTinyModel } from "./testing.ts";

const MODEL = { arch: "qwen3" as const, seed: 1, overrides: { max_position_embeddings: 4096 } };

async function withFeatures(
  fn: (model: Model, set: FeatureSet, dir: string) => Promise<void>,
): Promise<void> {
  await withTinyModel(MODEL, async (dir) => {
    const model = await Model.load(dir, { threads: 1 });
    const docs = Array.from({ length: 4 }, (_, i) => ({
      name: `doc${i}.txt`,
      text: generatedText(100 + i, 150),
    }));
    await extractFeatures(model, { docs, dir: `${dir}/features` }, { reconstructionChunk: 200 });
    const set = await FeatureSet.open(`${dir}/features`);
    try {
      await fn(model, set, dir);
    } finally {
      set.close();
    }
  });
}

/** KVzip targets and gate scores of a held-out text, pooled over (layer, head, token). */
async function heldOut(model: Model, gates: GateSet): Promise<{ gate: number[]; kvzip: number[] }> {
  const { hiddenSize: D, numKvHeads: H } = model.config;
  const L = gates.layers.length;
  const context = Int32Array.from(
    model.tokenizer().encode(generatedText(999, 150), { addSpecialTokens: false }),
  );
  const n = context.length;
  const hidden = gates.layers.map(() => new Float32Array(n * D));
  const targets = await kvzipSample(model, { prompt: kvzipPrompt(model.tokenizer()), context }, {
    reconstructionChunk: 200,
    onHidden: (first, rows) => {
      for (let i = 0; i < rows.length / (L * D); i++) {
        for (let l = 0; l < L; l++) {
          hidden[l].set(rows.subarray((i * L + l) * D, (i * L + l + 1) * D), (first + i) * D);
        }
      }
    },
  });
  const gate: number[] = [];
  const kvzip: number[] = [];
  gates.layers.forEach((w, l) => {
    const scores = gateForward({ dims: gates.dims, weights: w }, hidden[l]);
    for (let h = 0; h < H; h++) {
      for (let t = 0; t < n; t++) {
        gate.push(scores[h * n + t]);
        kvzip.push(targets[(t * L + l) * H + h]);
      }
    }
  });
  return { gate, kvzip };
}

Deno.test("training lowers validation loss and ranks entries closer to KVzip than random", async () => {
  await withFeatures(async (model, set) => {
    const dims = gateDimsFor(model.config);
    const fresh = initGateSet(dims, gatedLayers(model.config), { seed: 0 });
    const before = await validateGates(set, fresh, { validationStride: 10, threads: 1 });
    const logs: StepLog[] = [];
    const result = await trainGates(set, {
      steps: 300,
      batchSize: 256,
      validationStride: 10,
      threads: 1,
      onStep: (log) => logs.push(log),
    });
    const after = result.history[result.history.length - 1];
    assert(
      after.validationLoss < 0.85 * before.loss,
      `validation loss ${before.loss} → ${after.validationLoss}`,
    );
    assert(after.validationAccuracy > before.accuracy);
    assertEquals(logs.length, 300);
    assertEquals(logs.filter((l) => l.validation).map((l) => l.step), [
      1,
      51,
      101,
      151,
      201,
      251,
      300,
    ]);
    assertEquals(result.validationTokens, Math.floor(set.tokens / 10));

    const { gate, kvzip } = await heldOut(model, result.gates);
    const uniform = seededRandom(42);
    const random = gate.map(() => uniform());
    const trained = spearman(gate, kvzip);
    const chance = spearman(random, kvzip);
    assert(
      trained > 0.4 && trained > chance + 0.3,
      `Spearman trained ${trained}, random ${chance}`,
    );
  });
});

Deno.test("onnxruntime and plain-loop matmuls train to the same gates", async () => {
  await withFeatures(async (_model, set) => {
    const options = { steps: 12, batchSize: 128, validationStride: 10, threads: 1 };
    const ort = await trainGates(set, { ...options, matmul: "ort" });
    const ts = await trainGates(set, { ...options, matmul: "ts" });
    for (let l = 0; l < ort.gates.layers.length; l++) {
      const a = ort.gates.layers[l];
      const b = ts.gates.layers[l];
      assertClose(a.qWeight, b.qWeight, 1e-3, 1e-4);
      assertClose(a.kBase, b.kBase, 1e-3, 1e-4);
      assertClose(a.bias, b.bias, 1e-3, 1e-4);
    }
  });
});

Deno.test("an interrupted run resumed from its checkpoint ends where an uninterrupted one does", async () => {
  await withFeatures(async (_model, set, dir) => {
    const options = {
      steps: 30,
      batchSize: 200,
      validationStride: 10,
      validationEvery: 10,
      checkpointEvery: 10,
      threads: 1,
      matmul: "ts" as const,
    };
    const straight = await trainGates(set, options);
    const checkpoint = `${dir}/gates.ckpt`;
    await assertRejects(
      () =>
        trainGates(set, {
          ...options,
          checkpoint,
          onStep: (log) => {
            if (log.step === 17) throw new Error("interrupted");
          },
        }),
      Error,
      "interrupted",
    );
    const resumed = await trainGates(set, { ...options, checkpoint, resume: true });
    assertEquals(resumed.stepsRun, 20); // from the checkpoint at step 10
    assertEquals(resumed.gates, straight.gates);
    assertEquals(resumed.history, straight.history);
    await assertRejects(
      () => trainGates(set, { ...options, steps: 40, checkpoint, resume: true }),
      InputError,
      "made with other --steps (30, now 40)",
    );
  });
});

Deno.test("validation is every 100th token; epochs are seeded permutations", () => {
  const { train, validation } = splitTokens(250, 100);
  assertEquals(Array.from(validation), [99, 199]);
  assertEquals(train.length, 248);
  const p = epochPermutation(50, { seed: 0, epoch: 3 });
  assertEquals(Array.from(p).sort((a, b) => a - b), Array.from({ length: 50 }, (_, i) => i));
  assertEquals(p, epochPermutation(50, { seed: 0, epoch: 3 }));
  assert(p.some((v, i) => v !== epochPermutation(50, { seed: 0, epoch: 4 })[i]));
});
