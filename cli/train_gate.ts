/**
 * `evictbench train-gate`: distil Fast KVzip gates for a model from KVzip targets (spec §2).
 *
 * 1. features: every corpus file is tokenised and cut into samples; per sample the frozen model
 *    prefills prompt + context and runs the reconstruction passes, and the hidden states and
 *    targets stream to `<out>.features/` (kept, so a rerun or --resume skips finished samples);
 * 2. training: SGD over random batches of those tokens, a progress line per --log-every steps
 *    (redrawn in place on a terminal, plain lines otherwise), validation every 50 steps, a
 *    checkpoint every --checkpoint-every steps to `<out>.ckpt` (--resume continues from it);
 * 3. the gates are written to --out as gates.safetensors, with the model's checkpoint fingerprint
 *    as `model_fingerprint` (the `gated` method refuses them for other weights of the same shape).
 *
 * @module
 */

import { InputError } from "../errors.ts";
import { checkOutputPath } from "./output.ts";
import { evaluateHeldOut, type HeldOutReport } from "../methods/gates/heldout.ts";
import { Model } from "../engine/model.ts";
import { DEFAULT_GATE_DIM, DEFAULT_GATE_SINKS } from "../methods/gates/gate.ts";
import { MODEL_FINGERPRINT_KEY, writeGateFile } from "../methods/gates/gate_file.ts";
import {
  type CorpusDocument,
  DEFAULT_RECONSTRUCTION_CHUNK,
  DEFAULT_SAMPLE_TOKENS,
  extractFeatures,
  FeatureSet,
} from "../methods/gates/features.ts";
import { type StepLog, trainGates } from "../methods/gates/train.ts";

/** Options of the train-gate command, as commander parses them. */
export interface TrainGateCommandOptions {
  model: string;
  corpus: string[];
  out: string;
  steps?: number;
  resume?: boolean;
  features?: string;
  checkpoint?: string;
  batchSize?: number;
  lr?: string;
  seed?: string;
  gateDim?: number;
  sinks?: number;
  chunk?: number;
  sampleTokens?: number;
  featureDtype?: string;
  logEvery?: number;
  checkpointEvery?: number;
  validationStride?: number;
  threads?: number;
  heldout?: string[];
  /** Backend of the frozen model's forward passes (the features): auto, cpu or webgpu. */
  backend?: "auto" | "cpu" | "webgpu";
}

/**
 * Progress of training: one line per `every` steps and one per validation. On a terminal the
 * running line is redrawn in place and validation lines stay; elsewhere every line is a plain
 * line. Driven by steps only, never by timers.
 *
 * @example
 * ```ts
 * const progress = new ProgressPrinter({ write: (s) => console.error(s), tty: false, every: 10 });
 * trainGates(set, { onStep: (log) => progress.step(log) });
 * ```
 */
export class ProgressPrinter {
  readonly #write: (text: string) => void;
  readonly #tty: boolean;
  readonly #every: number;
  #open = false;

  constructor(options: { write: (text: string) => void; tty: boolean; every: number }) {
    this.#write = options.write;
    this.#tty = options.tty;
    this.#every = options.every;
  }

  /** Report one step. */
  step(log: StepLog): void {
    const last = log.step === log.steps;
    const due = log.step % this.#every === 0 || last;
    if (!due && log.validation === undefined) return;
    const line = formatStep(log);
    if (!this.#tty) {
      this.#write(`${line}\n`);
      return;
    }
    // Redraw the running line; a validation line (or the last) is kept on screen.
    this.#write(`\r\x1b[K${line}`);
    this.#open = true;
    if (log.validation !== undefined || last) this.done();
  }

  /** End the running line (terminal only). */
  done(): void {
    if (this.#tty && this.#open) this.#write("\n");
    this.#open = false;
  }
}

/** One progress line. */
export function formatStep(log: StepLog): string {
  const width = String(log.steps).length;
  let line =
    `step ${String(log.step).padStart(width)}/${log.steps}  loss ${log.loss.toFixed(4)}  ` +
    `acc ${(100 * log.accuracy).toFixed(1)}%  lr ${log.lr.toFixed(4)}  ${
      log.stepsPerSecond.toFixed(1)
    } steps/s`;
  if (log.validation !== undefined) {
    line += `  | val loss ${log.validation.loss.toFixed(4)} acc ${
      (100 * log.validation.accuracy).toFixed(1)
    }%`;
  }
  return line;
}

function parseNumber(flag: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (text.trim() === "" || !Number.isFinite(n) || n < 0) {
    throw new InputError(`${flag} expects a non-negative number, got "${text}"`);
  }
  return n;
}

async function readCorpus(paths: string[], flag: string): Promise<CorpusDocument[]> {
  const docs: CorpusDocument[] = [];
  for (const path of paths) {
    let text: string;
    try {
      text = await Deno.readTextFile(path);
    } catch (error) {
      const why = error instanceof Deno.errors.NotFound
        ? "file not found"
        : error instanceof Deno.errors.IsADirectory
        ? "it is a directory"
        : (error as Error).message.split("\n")[0];
      throw new InputError(`${flag} ${path}: cannot read (${why})`);
    }
    if (text.trim() === "") throw new InputError(`${flag} ${path}: the file is empty`);
    docs.push({
      name: path,
      text: /\.(jsonl|ndjson)$/i.test(path) ? jsonlText(text, path, flag) : text,
    });
  }
  return docs;
}

/**
 * The text of a JSONL corpus: each record's `text`, or its `prompt` and `completion` (what
 * `deno task corpus` writes by default), joined by blank lines, as `corpus --format text`
 * would have written them. A line that is not such a record is an InputError naming it.
 */
export function jsonlText(content: string, path: string, flag: string): string {
  const texts: string[] = [];
  content.split("\n").forEach((line, i) => {
    if (line.trim() === "") return;
    const where = `${flag} ${path}:${i + 1}`;
    let record: unknown;
    try {
      record = JSON.parse(line);
    } catch (error) {
      throw new InputError(`${where}: not valid JSON (${(error as Error).message})`);
    }
    const r = (record ?? {}) as Record<string, unknown>;
    if (typeof r.text === "string") {
      texts.push(r.text);
    } else if (typeof r.prompt === "string") {
      if (r.completion !== undefined && typeof r.completion !== "string") {
        throw new InputError(`${where}: "completion" must be a string`);
      }
      texts.push(r.prompt + (r.completion ?? ""));
    } else {
      throw new InputError(
        `${where}: expected a record with a string "text", or "prompt" and "completion" ` +
          "(as deno task corpus writes)",
      );
    }
  });
  if (texts.length === 0) throw new InputError(`${flag} ${path}: no records`);
  return texts.join("\n\n") + "\n";
}

/** Run the train-gate command. */
export async function runTrainGateCommand(options: TrainGateCommandOptions): Promise<void> {
  const lr = parseNumber("--lr", options.lr, 0.2);
  const seed = parseNumber("--seed", options.seed, 0);
  if (!Number.isInteger(seed)) {
    throw new InputError(`--seed expects an integer, got "${options.seed}"`);
  }
  const dtype = (options.featureDtype ?? "bf16").toUpperCase();
  if (dtype !== "BF16" && dtype !== "F32") {
    throw new InputError(`--feature-dtype expects bf16 or f32, got "${options.featureDtype}"`);
  }
  await checkOutputPath(options.out, "--out");
  const featuresDir = options.features ?? `${options.out}.features`;
  const checkpoint = options.checkpoint ?? `${options.out}.ckpt`;
  await checkOutputPath(
    featuresDir,
    options.features === undefined ? "--out" : "--features",
    "directory",
  );
  await checkOutputPath(checkpoint, options.checkpoint === undefined ? "--out" : "--checkpoint");
  const hasCheckpoint = await Deno.stat(checkpoint).then(() => true, () => false);
  if (options.resume && !hasCheckpoint) {
    throw new InputError(`--resume: no checkpoint at ${checkpoint}`);
  }
  if (!options.resume && hasCheckpoint) {
    // Starting over would overwrite an earlier run's progress.
    throw new InputError(
      `${checkpoint}: a checkpoint of an earlier run is there; pass --resume to continue it, ` +
        "or delete it to start over",
    );
  }
  const docs = await readCorpus(options.corpus, "--corpus");
  const heldoutDocs = options.heldout === undefined
    ? null
    : await readCorpus(options.heldout, "--heldout");
  const log = (text: string) => Deno.stderr.writeSync(new TextEncoder().encode(text));

  const model = await Model.load(options.model, {
    threads: options.threads,
    backend: options.backend ?? "cpu",
  });
  log(`model: ${options.model} (forward passes on the ${model.backend} backend)\n`);
  // Training and held-out features are extracted alike.
  const extraction = {
    reconstructionChunk: options.chunk ?? DEFAULT_RECONSTRUCTION_CHUNK,
    sampleTokens: options.sampleTokens ?? DEFAULT_SAMPLE_TOKENS,
    dtype,
  } as const;
  const t0 = performance.now();
  const manifest = await extractFeatures(model, { docs, dir: featuresDir }, {
    ...extraction,
    onSample: (s) =>
      log(
        `features: sample ${s.index + 1} ${s.source} (${s.tokens} tokens) ${
          s.reused ? "reused" : `done at ${((performance.now() - t0) / 1000).toFixed(1)} s`
        }\n`,
      ),
  });
  const tokens = manifest.shards.reduce((n, s) => n + s.tokens, 0);
  log(`features: ${tokens} tokens in ${manifest.shards.length} samples, ${featuresDir}\n`);

  const set = await FeatureSet.open(featuresDir);
  // The checkpoint the features, and so the gates, come from (extraction refused any other).
  const fingerprint = set.settings.checkpoint;
  const tty = Deno.stderr.isTerminal() && Deno.env.get("CI") === undefined;
  const progress = new ProgressPrinter({ write: log, tty, every: options.logEvery ?? 10 });
  let result;
  try {
    result = await trainGates(set, {
      steps: options.steps,
      batchSize: options.batchSize,
      lr,
      seed,
      gateDim: options.gateDim ?? DEFAULT_GATE_DIM,
      sinks: options.sinks ?? DEFAULT_GATE_SINKS,
      validationStride: options.validationStride,
      checkpoint,
      checkpointEvery: options.checkpointEvery,
      resume: options.resume,
      threads: options.threads,
      onStep: (s) => progress.step(s),
    });
  } finally {
    progress.done();
    set.close();
  }
  const last = result.history[result.history.length - 1];
  let heldout: HeldOutReport | null = null;
  if (heldoutDocs !== null) {
    const dir = `${featuresDir}.heldout`;
    await extractFeatures(model, { docs: heldoutDocs, dir }, extraction);
    const heldoutSet = await FeatureSet.open(dir);
    try {
      heldout = evaluateHeldOut(heldoutSet, result.gates);
    } finally {
      heldoutSet.close();
    }
    for (const layer of heldout.layers) {
      log(
        `held-out layer ${layer.layer}: accuracy ${(100 * layer.accuracy).toFixed(1)}%, Spearman ${
          layer.spearman.toFixed(3)
        } (heads ${layer.spearmanPerHead.map((r) => r.toFixed(2)).join(" ")})\n`,
      );
    }
  }
  await writeGateFile(options.out, result.gates, {
    metadata: {
      source: "evictbench train-gate",
      model: options.model,
      [MODEL_FINGERPRINT_KEY]: fingerprint,
      steps: String(options.steps ?? 5000),
      train_tokens: String(result.trainTokens),
      validation_tokens: String(result.validationTokens),
      validation_loss: String(last?.validationLoss ?? NaN),
      validation_accuracy: String(last?.validationAccuracy ?? NaN),
      history: JSON.stringify(result.history),
      ...(heldout === null ? {} : {
        heldout_tokens: String(heldout.tokens),
        heldout_accuracy: String(heldout.accuracy),
        heldout_spearman: String(heldout.spearman),
        heldout_layers: JSON.stringify(heldout.layers),
      }),
    },
  });
  console.log(
    `wrote ${options.out}: gates for ${result.gates.layers.length} layers (d=${result.gates.dims.gateDim}, S=${result.gates.dims.sinks}); validation loss ${
      last?.validationLoss.toFixed(4)
    }, accuracy ${(100 * (last?.validationAccuracy ?? NaN)).toFixed(1)}%; ${
      result.stepsPerSecond.toFixed(1)
    } steps/s${
      heldout === null
        ? ""
        : `; held-out (${heldout.tokens} tokens): accuracy ${
          (100 * heldout.accuracy).toFixed(1)
        }%, Spearman with KVzip ${heldout.spearman.toFixed(3)}`
    }`,
  );
}
