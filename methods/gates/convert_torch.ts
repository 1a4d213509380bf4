/**
 * Conversion of the officially released gate checkpoints (spec §1.5) to gates.safetensors.
 *
 * A release file `q{G}_dim{d}_sink{S}.pt` is a torch zip archive whose pickle holds a dict:
 * "module" → one state dict per gated layer (q_proj.weight, q_proj.bias, k_proj.weight,
 * q_norm.weight, k_norm.weight, k_base [H,1,S,d], b [H,1,G]) and the training curves "loss",
 * "acc", "loss_train", "acc_train" (numpy arrays [log points, layers]). Dims come from the tensor
 * shapes as in the official loader: d = len(q_norm), H = rows(k_proj)/d,
 * G = rows(q_proj)/rows(k_proj), D = cols(q_proj), S from k_base (checked against "sink{S}" in
 * the file name when present). The pickle is read by pickle.ts, which runs no code.
 *
 * @module
 */

import { InputError } from "../../errors.ts";
import { bf16BitsToF32, f16BitsToF32 } from "../../engine/safetensors.ts";
import type { ModelConfig } from "../../engine/types.ts";
import { type GateDims, gatedLayers, type GateLayerWeights, type GateSet } from "./gate.ts";
import { checkGatesFitModel, type GateDtype } from "./gate_file.ts";
import {
  PyDict,
  PyGlobal,
  PyNumpyArray,
  PyTensor,
  PyTuple,
  type PyValue,
  readPickle,
} from "./pickle.ts";
import { ZipArchive } from "./zip.ts";

/** A storage a persistent id names: zip entry `data/{key}`, element dtype, element count. */
interface StorageRef {
  key: string;
  dtype: GateDtype;
  numel: number;
}

const STORAGE_DTYPES: Record<string, GateDtype> = {
  FloatStorage: "F32",
  BFloat16Storage: "BF16",
  HalfStorage: "F16",
};

const BYTES: Record<GateDtype, number> = { F32: 4, BF16: 2, F16: 2 };

/** A torch checkpoint opened for reading: the pickled value and its tensors on demand. */
export interface TorchCheckpoint {
  label: string;
  root: PyValue;
  /** The values of `tensor` as f32 (C order) and its storage dtype. */
  readTensor(tensor: PyTensor): Promise<{ values: Float32Array; dtype: GateDtype }>;
}

/**
 * Open a torch zip checkpoint without executing any of it.
 *
 * @example
 * ```ts
 * const ckpt = await openTorchCheckpoint("q2_dim16_sink16.pt");
 * ```
 */
export async function openTorchCheckpoint(path: string): Promise<TorchCheckpoint> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (error) {
    const why = error instanceof Deno.errors.NotFound ? "file not found" : String(error);
    throw new InputError(`${path}: cannot read (${why})`, { cause: error });
  }
  const label = path;
  const zip = ZipArchive.open(bytes, label);
  const pickles = zip.names().filter((n) => /^[^/]+\/data\.pkl$/.test(n));
  if (pickles.length !== 1) {
    throw new InputError(
      `${label}: expected one <archive>/data.pkl entry in the zip, found ${pickles.length}; not a torch checkpoint?`,
    );
  }
  const prefix = pickles[0].slice(0, -"data.pkl".length);
  const order = zip.entry(`${prefix}byteorder`);
  if (order !== undefined) {
    const text = new TextDecoder().decode(await zip.read(`${prefix}byteorder`)).trim();
    if (text !== "little") {
      throw new InputError(
        `${label}: tensors are stored ${text}-endian; only little-endian is read`,
      );
    }
  }
  const root = readPickle(await zip.read(pickles[0]), {
    label: `${label} (${pickles[0]})`,
    persistentLoad: (pid) => storageRef(pid, label),
  });
  const storages = new Map<string, Uint8Array>();
  return {
    label,
    root,
    async readTensor(tensor) {
      const ref = tensor.storage.value as StorageRef;
      let data = storages.get(ref.key);
      if (data === undefined) {
        data = await zip.read(`${prefix}data/${ref.key}`);
        if (data.length !== ref.numel * BYTES[ref.dtype]) {
          throw new InputError(
            `${label}: storage ${ref.key} holds ${data.length} bytes, expected ${ref.numel} ${ref.dtype} elements`,
          );
        }
        storages.set(ref.key, data);
      }
      return { values: gatherStrided(data, ref, tensor, label), dtype: ref.dtype };
    },
  };
}

function storageRef(pid: PyValue, label: string): StorageRef {
  const items = pid instanceof PyTuple ? pid.items : [];
  const [tag, type, key, , numel] = items;
  if (
    items.length !== 5 || tag !== "storage" || !(type instanceof PyGlobal) ||
    typeof key !== "string" || typeof numel !== "number" || !/^[\w.-]+$/.test(key)
  ) {
    throw new InputError(`${label}: a persistent id is not a torch storage reference`);
  }
  const dtype = STORAGE_DTYPES[type.name];
  if (type.module !== "torch" || dtype === undefined) {
    throw new InputError(`${label}: storage type ${type.qualified} is not supported`);
  }
  return { key, dtype, numel };
}

/** The elements of a strided view of a storage, widened to f32 in C order. */
function gatherStrided(
  data: Uint8Array,
  ref: StorageRef,
  tensor: PyTensor,
  label: string,
): Float32Array {
  const aligned = data.byteOffset % 4 === 0 ? data : data.slice();
  const all = ref.dtype === "F32"
    ? new Float32Array(aligned.buffer, aligned.byteOffset, ref.numel)
    : ref.dtype === "BF16"
    ? bf16BitsToF32(new Uint16Array(aligned.buffer, aligned.byteOffset, ref.numel))
    : f16BitsToF32(new Uint16Array(aligned.buffer, aligned.byteOffset, ref.numel));
  const { shape, stride, offset } = tensor;
  if (shape.length !== stride.length) {
    throw new InputError(`${label}: a tensor's size and stride differ in rank`);
  }
  const count = shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(count);
  const index = new Array(shape.length).fill(0);
  for (let i = 0; i < count; i++) {
    let at = offset;
    for (let k = 0; k < shape.length; k++) at += index[k] * stride[k];
    if (at < 0 || at >= ref.numel) {
      throw new InputError(`${label}: a tensor view reaches past its storage ${ref.key}`);
    }
    out[i] = all[at];
    for (let k = shape.length - 1; k >= 0; k--) {
      if (++index[k] < shape[k]) break;
      index[k] = 0;
    }
  }
  return out;
}

/** Options of {@linkcode convertTorchGates}. */
export interface ConvertOptions {
  /** The model the gates belong to: gives the gated layer indices and is checked. */
  config?: ModelConfig;
  modelLabel?: string;
}

/** What {@linkcode convertTorchGates} produced. */
export interface ConvertedGates {
  gates: GateSet;
  /** Source storage dtype per parameter name (the converter keeps it in the output). */
  dtypes: Record<string, GateDtype>;
  /** Training curves found in the checkpoint: per name, the mean over layers per log point. */
  curves: Record<string, number[]>;
}

const PARAMS: { name: string; field: Exclude<keyof GateLayerWeights, "layer"> }[] = [
  { name: "q_proj.weight", field: "qWeight" },
  { name: "q_proj.bias", field: "qBias" },
  { name: "k_proj.weight", field: "kWeight" },
  { name: "q_norm.weight", field: "qNorm" },
  { name: "k_norm.weight", field: "kNorm" },
  { name: "k_base", field: "kBase" },
  { name: "b", field: "bias" },
];

/**
 * Read an official gate checkpoint into a {@linkcode GateSet}.
 *
 * @example
 * ```ts
 * const { gates, dtypes } = await convertTorchGates("q2_dim16_sink16.pt", { config });
 * await writeGateFile("gates.safetensors", gates, { dtypes });
 * ```
 */
export async function convertTorchGates(
  path: string,
  options: ConvertOptions = {},
): Promise<ConvertedGates> {
  const ckpt = await openTorchCheckpoint(path);
  const label = ckpt.label;
  const root = ckpt.root;
  const modules = root instanceof PyDict ? root.entries.get("module") : undefined;
  if (!Array.isArray(modules) || modules.length === 0) {
    throw new InputError(
      `${label}: expected a dict with a non-empty "module" list of per-layer state dicts`,
    );
  }
  const tensorsOf = (l: number): Map<string, PyTensor> => {
    const sd = modules[l];
    if (!(sd instanceof PyDict)) throw new InputError(`${label}: module[${l}] is not a state dict`);
    const out = new Map<string, PyTensor>();
    for (const { name } of PARAMS) {
      const t = sd.entries.get(name);
      if (!(t instanceof PyTensor)) {
        throw new InputError(
          `${label}: module[${l}] has no tensor "${name}"${
            name === "k_base" ? " (gates without sink keys, S=0, are not supported)" : ""
          }`,
        );
      }
      out.set(name, t);
    }
    return out;
  };
  const first = tensorsOf(0);
  const dims = inferDims(label, first, path);
  const layers = options.config === undefined
    ? modules.map((_, i) => i)
    : gatedLayers(options.config);
  if (options.config !== undefined) {
    if (layers.length !== modules.length) {
      throw new InputError(
        `${label}: holds gates for ${modules.length} layers, but ${
          options.modelLabel ?? "the model"
        } has ${layers.length} global-attention layers`,
      );
    }
    checkGatesFitModel({ dims, layers }, {
      config: options.config,
      gateLabel: label,
      modelLabel: options.modelLabel ?? "the model",
    });
  }
  const expected = expectedShapes(dims);
  const dtypes: Record<string, GateDtype> = {};
  const gateLayers: GateLayerWeights[] = [];
  for (let l = 0; l < modules.length; l++) {
    const tensors = l === 0 ? first : tensorsOf(l);
    const w: Partial<GateLayerWeights> = { layer: layers[l] };
    for (const { name, field } of PARAMS) {
      const t = tensors.get(name)!;
      const want = expected[name];
      if (t.shape.length !== want.length || t.shape.some((v, i) => v !== want[i])) {
        throw new InputError(
          `${label}: module[${l}].${name} has shape [${t.shape}], expected [${want}] (layer 0 gives D=${dims.hiddenSize}, H=${dims.numKvHeads}, G=${dims.group}, d=${dims.gateDim}, S=${dims.sinks})`,
        );
      }
      const { values, dtype } = await ckpt.readTensor(t);
      for (let i = 0; i < values.length; i++) {
        if (!Number.isFinite(values[i])) {
          throw new InputError(`${label}: module[${l}].${name} holds a non-finite value`);
        }
      }
      if (l === 0) dtypes[name] = dtype;
      w[field] = values;
    }
    gateLayers.push(w as GateLayerWeights);
  }
  return { gates: { dims, layers: gateLayers }, dtypes, curves: readCurves(root as PyDict) };
}

function inferDims(label: string, t: Map<string, PyTensor>, path: string): GateDims {
  const rank = (name: string, r: number) => {
    const shape = t.get(name)!.shape;
    if (shape.length !== r) {
      throw new InputError(`${label}: module[0].${name} has rank ${shape.length}, expected ${r}`);
    }
    return shape;
  };
  const d = rank("q_norm.weight", 1)[0];
  const [qRows, D] = rank("q_proj.weight", 2);
  const [kRows] = rank("k_proj.weight", 2);
  const kBase = rank("k_base", 4);
  const H = kRows / d;
  const G = qRows / kRows;
  const S = kBase[2];
  if (!Number.isInteger(H) || !Number.isInteger(G) || d < 1 || H < 1 || G < 1 || S < 1) {
    throw new InputError(
      `${label}: inconsistent gate shapes (q_proj rows ${qRows}, k_proj rows ${kRows}, d ${d}, k_base [${kBase}])`,
    );
  }
  const named = /sink(\d+)/.exec(path.split("/").pop() ?? "");
  if (named !== null && Number(named[1]) !== S) {
    throw new InputError(
      `${label}: the file name says sink${named[1]} but k_base holds ${S} sink keys`,
    );
  }
  return { hiddenSize: D, numKvHeads: H, group: G, gateDim: d, sinks: S };
}

function expectedShapes(dims: GateDims): Record<string, number[]> {
  const { hiddenSize: D, numKvHeads: H, group: G, gateDim: d, sinks: S } = dims;
  return {
    "q_proj.weight": [H * G * d, D],
    "q_proj.bias": [H * G * d],
    "k_proj.weight": [H * d, D],
    "q_norm.weight": [d],
    "k_norm.weight": [d],
    "k_base": [H, 1, S, d],
    "b": [H, 1, G],
  };
}

function readCurves(root: PyDict): Record<string, number[]> {
  const curves: Record<string, number[]> = {};
  for (const name of ["loss", "acc", "loss_train", "acc_train"]) {
    const v = root.entries.get(name);
    if (!(v instanceof PyNumpyArray) || v.shape.length !== 2) continue;
    const [points, layers] = v.shape;
    let values: number[];
    try {
      values = v.toNumbers();
    } catch {
      continue;
    }
    curves[name] = Array.from({ length: points }, (_, i) => {
      let sum = 0;
      for (let l = 0; l < layers; l++) sum += values[i * layers + l];
      return sum / layers;
    });
  }
  return curves;
}
