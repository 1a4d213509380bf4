/**
 * gates.safetensors: the gates of one model in one safetensors file.
 *
 * Tensors, per gated layer i (the model's absolute layer index):
 *   layers.{i}.q_proj.weight [H·G·d, D]   layers.{i}.q_proj.bias [H·G·d]
 *   layers.{i}.k_proj.weight [H·d, D]     layers.{i}.q_norm.weight [d]   layers.{i}.k_norm.weight [d]
 *   layers.{i}.k_base [H, S, d]           layers.{i}.b [H, G]
 * `__metadata__`: format "evictbench-gates", format_version "1", hidden_size, num_kv_heads,
 * group, gate_dim, sinks, layers (comma-separated indices), optionally model_fingerprint (the
 * {@linkcode checkpointFingerprint} of the model the gates were trained on), plus free-form
 * provenance keys.
 *
 * Reading validates the file against itself (every tensor present, shaped as the metadata says,
 * finite) and, given a model config, against the model: a gate file for another model shape or
 * another set of gated layers is a one-line InputError naming the file and the mismatch.
 * {@linkcode checkGatesTrainedFor} also tells other weights of the same shape apart.
 *
 * @module
 */

import { InputError } from "../../errors.ts";
import {
  checkpointFingerprint,
  f32ToBf16,
  f32ToF16,
  formatShape,
  openSafetensors,
  rewriteSafetensorsMetadata,
  type TensorToWrite,
  writeSafetensors,
} from "../../engine/safetensors.ts";
import type { ModelConfig } from "../../engine/types.ts";
import {
  checkDims,
  type GateDims,
  gatedLayers,
  type GateLayerWeights,
  type GateParamSpec,
  gateParamSpecs,
  type GateSet,
} from "./gate.ts";

/** `__metadata__.format` of a gate file. */
export const GATE_FILE_FORMAT = "evictbench-gates";
/** `__metadata__.format_version` this code writes and reads. */
export const GATE_FILE_VERSION = "1";
/** The file name the `gated` method looks for in a model directory by default. */
export const DEFAULT_GATE_FILE = "gates.safetensors";

/**
 * `__metadata__` key holding the {@linkcode checkpointFingerprint} of the model the gates were
 * trained on. Absent in files that cannot know it (converted official gates, older files).
 */
export const MODEL_FINGERPRINT_KEY = "model_fingerprint";

/** Storage dtype of a gate tensor. */
export type GateDtype = "F32" | "BF16" | "F16";

/** Options of {@linkcode writeGateFile}. */
export interface WriteGateFileOptions {
  /** Extra `__metadata__` entries (provenance, training summary). */
  metadata?: Record<string, string>;
  /** Storage dtype per parameter (by its state-dict name); default F32. */
  dtypes?: Record<string, GateDtype>;
  /** Extra tensors to store beside the gates (e.g. a checkpoint's momentum buffers). */
  extra?: Record<string, TensorToWrite>;
}

/** A gate file as read: the gates and its metadata. */
export interface GateFile {
  gates: GateSet;
  metadata: Record<string, string>;
  /** Names of tensors in the file that are not gate parameters. */
  extraTensors: string[];
}

/** Options of {@linkcode readGateFile}. */
export interface ReadGateFileOptions {
  /** Validate against this model (dims and gated layers); `modelLabel` names it in errors. */
  config?: ModelConfig;
  modelLabel?: string;
}

/** Tensor name of parameter `spec` of the gate of model layer `layer`. */
export function gateTensorName(layer: number, paramName: string): string {
  return `layers.${layer}.${paramName}`;
}

/** The `__metadata__` describing `gates`. */
export function gateMetadata(gates: GateSet): Record<string, string> {
  const { dims } = gates;
  return {
    format: GATE_FILE_FORMAT,
    format_version: GATE_FILE_VERSION,
    hidden_size: String(dims.hiddenSize),
    num_kv_heads: String(dims.numKvHeads),
    group: String(dims.group),
    gate_dim: String(dims.gateDim),
    sinks: String(dims.sinks),
    layers: gates.layers.map((w) => w.layer).join(","),
  };
}

/**
 * Write `gates` to `path` (atomically, via the safetensors writer).
 *
 * @example
 * ```ts
 * await writeGateFile("models/qwen3/gates.safetensors", gates, { metadata: { source: "train-gate" } });
 * ```
 */
export async function writeGateFile(
  path: string,
  gates: GateSet,
  options: WriteGateFileOptions = {},
): Promise<void> {
  const tensors: Record<string, TensorToWrite> = { ...(options.extra ?? {}) };
  const specs = gateParamSpecs(gates.dims);
  for (const w of gates.layers) {
    for (const spec of specs) {
      const values = w[spec.field];
      const dtype = options.dtypes?.[spec.name] ?? "F32";
      const data = dtype === "BF16"
        ? f32ToBf16(values)
        : dtype === "F16"
        ? f32ToF16(values)
        : values;
      tensors[gateTensorName(w.layer, spec.name)] = { dtype, shape: spec.shape, data };
    }
  }
  const metadata = { ...(options.metadata ?? {}), ...gateMetadata(gates) };
  await writeSafetensors(path, tensors, { metadata });
}

function metaInt(label: string, metadata: Record<string, string>, key: string): number {
  const text = metadata[key];
  if (text === undefined) {
    throw new InputError(`${label}: __metadata__ has no "${key}"; not an evictbench gates file?`);
  }
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n) || n < 1) {
    throw new InputError(
      `${label}: __metadata__.${key} must be a positive integer, got "${text}"`,
    );
  }
  return n;
}

function metaLayers(label: string, metadata: Record<string, string>): number[] {
  const text = metadata.layers;
  if (text === undefined) {
    throw new InputError(`${label}: __metadata__ has no "layers"; not an evictbench gates file?`);
  }
  const parts = text.split(",");
  const layers = parts.map(Number);
  const ok = text !== "" && parts.every((p) => /^\d+$/.test(p)) &&
    layers.every((l, i) => i === 0 || l > layers[i - 1]);
  if (!ok) {
    throw new InputError(
      `${label}: __metadata__.layers must be increasing comma-separated layer indices, got "${text}"`,
    );
  }
  return layers;
}

/**
 * Read and validate a gates.safetensors file.
 *
 * @example
 * ```ts
 * const { gates } = await readGateFile(`${dir}/gates.safetensors`, { config: model.config });
 * ```
 */
export async function readGateFile(
  path: string,
  options: ReadGateFileOptions = {},
): Promise<GateFile> {
  const file = await openSafetensors(path);
  const label = file.label;
  try {
    const metadata = { ...file.metadata };
    if (metadata.format !== GATE_FILE_FORMAT) {
      throw new InputError(
        `${label}: __metadata__.format is ${
          metadata.format === undefined ? "missing" : `"${metadata.format}"`
        }; expected "${GATE_FILE_FORMAT}" (convert official .pt gates with convert-gate)`,
      );
    }
    if (metadata.format_version !== GATE_FILE_VERSION) {
      throw new InputError(
        `${label}: gate file format_version "${metadata.format_version}" is not supported (expected "${GATE_FILE_VERSION}")`,
      );
    }
    const dims: GateDims = {
      hiddenSize: metaInt(label, metadata, "hidden_size"),
      numKvHeads: metaInt(label, metadata, "num_kv_heads"),
      group: metaInt(label, metadata, "group"),
      gateDim: metaInt(label, metadata, "gate_dim"),
      sinks: metaInt(label, metadata, "sinks"),
    };
    checkDims(dims, label);
    const layerIndices = metaLayers(label, metadata);
    if (options.config !== undefined) {
      checkGatesFitModel({ dims, layers: layerIndices }, {
        config: options.config,
        gateLabel: label,
        modelLabel: options.modelLabel ?? "the model",
      });
    }
    const specs = gateParamSpecs(dims);
    const known = new Set<string>();
    const layers: GateLayerWeights[] = [];
    for (const layer of layerIndices) {
      const w: Partial<GateLayerWeights> = { layer };
      for (const spec of specs) {
        const name = gateTensorName(layer, spec.name);
        known.add(name);
        w[spec.field] = await readParam(file, label, { name, spec });
      }
      layers.push(w as GateLayerWeights);
    }
    const extraTensors = file.names().filter((n) => !known.has(n));
    return { gates: { dims, layers }, metadata, extraTensors };
  } finally {
    file.close();
  }
}

async function readParam(
  file: Awaited<ReturnType<typeof openSafetensors>>,
  label: string,
  { name, spec }: { name: string; spec: GateParamSpec },
): Promise<Float32Array> {
  const info = file.info(name);
  if (info === undefined) {
    throw new InputError(`${label}: tensor ${name} is missing`);
  }
  const same = info.shape.length === spec.shape.length &&
    info.shape.every((v, i) => v === spec.shape[i]);
  if (!same) {
    throw new InputError(
      `${label}: tensor ${name} has shape ${formatShape(info.shape)}; the metadata's dims need ${
        formatShape(spec.shape)
      }`,
    );
  }
  const values = await file.readF32(name);
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i])) {
      throw new InputError(`${label}: tensor ${name} holds a non-finite value at element ${i}`);
    }
  }
  return values;
}

/**
 * Fail with an InputError naming the gate file unless gates with `dims` on `layers` fit the
 * model: same hidden size, KV heads and group, and exactly the model's global layers.
 *
 * @example
 * ```ts
 * checkGatesFitModel({ dims, layers: [0, 1] }, { config, gateLabel: "g.safetensors", modelLabel: dir });
 * ```
 */
export function checkGatesFitModel(
  gates: { dims: GateDims; layers: readonly number[] },
  model: { config: ModelConfig; gateLabel: string; modelLabel: string },
): void {
  const { config, modelLabel, gateLabel: label } = model;
  const want = {
    hiddenSize: config.hiddenSize,
    numKvHeads: config.numKvHeads,
    group: config.numHeads / config.numKvHeads,
  };
  const have = gates.dims;
  if (
    have.hiddenSize !== want.hiddenSize || have.numKvHeads !== want.numKvHeads ||
    have.group !== want.group
  ) {
    throw new InputError(
      `${label}: gates are for hidden size ${have.hiddenSize}, ${have.numKvHeads} KV heads, group ${have.group}, but ${modelLabel} has hidden size ${want.hiddenSize}, ${want.numKvHeads} KV heads, group ${want.group}`,
    );
  }
  const global = gatedLayers(config);
  const same = global.length === gates.layers.length &&
    global.every((l, i) => l === gates.layers[i]);
  if (!same) {
    throw new InputError(
      `${label}: gates cover layers [${
        gates.layers.join(",")
      }], but ${modelLabel} has ${config.numLayers} layers whose global-attention layers are [${
        global.join(",")
      }]`,
    );
  }
}

/** Options of {@linkcode checkGatesTrainedFor}. */
export interface TrainedForOptions {
  /** How messages name the gate file. */
  gateLabel: string;
  /** Accept gates trained for another checkpoint (`gated`'s `allowOtherModel`). */
  allowOtherModel?: boolean;
}

/**
 * Fail with a one-line InputError naming the gate file, both fingerprints and the override
 * unless gates whose metadata is `metadata` were trained for the model in `modelDir`: its
 * {@linkcode checkpointFingerprint} equals the file's {@linkcode MODEL_FINGERPRINT_KEY}. A file
 * without the key passes, and so does any file with `allowOtherModel`.
 *
 * @example
 * ```ts
 * await checkGatesTrainedFor(file.metadata, "models/qwen3", { gateLabel: "gates.safetensors" });
 * ```
 */
export async function checkGatesTrainedFor(
  metadata: Readonly<Record<string, string>>,
  modelDir: string,
  options: TrainedForOptions,
): Promise<void> {
  const trainedFor = metadata[MODEL_FINGERPRINT_KEY];
  if (trainedFor === undefined || options.allowOtherModel) return;
  const fingerprint = await checkpointFingerprint(modelDir);
  if (fingerprint === trainedFor) return;
  throw new InputError(
    `${options.gateLabel}: gates were trained for checkpoint ${trainedFor}, but ${modelDir} is ` +
      `checkpoint ${fingerprint} (other weights or config.json); set gated's parameter ` +
      "allowOtherModel: true to use them anyway",
  );
}

/** What {@linkcode stampGateFile} did. */
export interface StampResult {
  /** The model's {@linkcode checkpointFingerprint}, now in the file. */
  fingerprint: string;
  /** False when the file already held it (nothing was written). */
  changed: boolean;
}

/**
 * Record in the gate file at `path` that its gates were trained on `model`: the model's
 * {@linkcode checkpointFingerprint} under {@linkcode MODEL_FINGERPRINT_KEY}, written by
 * rewriting the header's metadata only (every tensor stays byte-identical). For gate files
 * trained before train-gate recorded it, on a model known to be theirs. The file must fit the
 * model; one that already names this fingerprint is left as it is (rerunnable), one that names
 * another is an InputError.
 *
 * @example
 * ```ts
 * const dir = "models/organism-qwen3-10m";
 * await stampGateFile(`${dir}/gates.safetensors`, { dir, config });
 * ```
 */
export async function stampGateFile(
  path: string,
  model: { dir: string; config: ModelConfig },
): Promise<StampResult> {
  const { metadata } = await readGateFile(path, { config: model.config, modelLabel: model.dir });
  const fingerprint = await checkpointFingerprint(model.dir);
  const recorded = metadata[MODEL_FINGERPRINT_KEY];
  if (recorded === fingerprint) return { fingerprint, changed: false };
  if (recorded !== undefined) {
    throw new InputError(
      `${path}: __metadata__.${MODEL_FINGERPRINT_KEY} already names the checkpoint ${recorded}, ` +
        `not ${model.dir} (${fingerprint}); these gates were trained on another model`,
    );
  }
  await rewriteSafetensorsMetadata(path, { ...metadata, [MODEL_FINGERPRINT_KEY]: fingerprint });
  return { fingerprint, changed: true };
}
