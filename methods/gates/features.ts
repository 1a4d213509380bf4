/**
 * Training data for the gates (spec §2): per context token, every gated layer's attention-input
 * hidden state and its KVzip importance target, from forward passes of the frozen model only.
 *
 * Per sample (one corpus document, or one slice of it):
 * 1. prefill prefix P ++ context C with the full cache; the taps hand over the hidden states
 *    of C's tokens, which stream to the shard file as they arrive;
 * 2. for each 2000-token chunk C_i of C: mark the cache, run R_i = Q_i ++ A ++ C_i on top of it
 *    (Q_1 "Repeat the previous context exactly.", later Q_i "…starting with " + the last 8
 *    tokens of C_{i−1}; A the assistant-turn opener), restore the mark. In every gated layer,
 *    R_i's post-RoPE queries attend with a restricted softmax over the keys of P ++ C_i ++ R_i
 *    (causal over R_i); the target of token t ∈ C_i is the max over R_i's queries and the
 *    group's query heads of its probability (spec §2.1). The restricted softmax runs through
 *    the store's own attention (a scratch store holding only those keys, `columnMax` with
 *    `gqa: "max"`), in f32 where the official code used bf16.
 *
 * On disk, a features directory holds `manifest.json` and one safetensors shard per sample with
 * `hidden` [n, L, D] (BF16 by default, the model dtype of the official features) and `targets`
 * [n, L, H] (F32). Token-major, unlike the spec's [L, n, D], so that one random training token
 * is one contiguous read: the trainer gathers its batches from disk and memory stays bounded.
 *
 * @module
 */

import { InputError } from "../../errors.ts";
import { shortDigest } from "../../digest.ts";
import { DEFAULT_PREFILL_CHUNK, type Model } from "../../engine/model.ts";
import {
  bf16BitsToF32,
  checkpointFingerprint,
  f32ToBf16,
  openSafetensors,
} from "../../engine/safetensors.ts";
import type { TextTokenizer } from "../../engine/tokenizer.ts";
import type { KvStore } from "../../kernels/kv_store.ts";
import { assistantOpener, runReconstructionPass } from "../kvzip.ts";
import { gatedLayers } from "./gate.ts";

/** The instruction line of the "qa" prompt style (spec §6.2). */
export const QA_INSTRUCTION =
  "Given the context, answer to the following question or request without explanation.\n\n";
/** System prompt of the chat-template prefix (spec §6.2). */
export const SYSTEM_PROMPT = "You are a helpful assistant.";
/** Q_1 of the reconstruction passes. */
export const REPEAT_FIRST = "\n\nRepeat the previous context exactly.";
/** Q_i, i > 1, before the last 8 tokens of the previous chunk (trailing space intended). */
export const REPEAT_NEXT = "\n\nRepeat the part of the previous context exactly, starting with ";
/** Tokens of the previous chunk quoted in Q_i. */
export const REPEAT_TAIL = 8;
/** Reconstruction chunk in tokens (spec §2.1). */
export const DEFAULT_RECONSTRUCTION_CHUNK = 2000;
/**
 * Context tokens per sample by default: a document is cut into slices of at most this (and of
 * the model's window less the prompt and one reconstruction chunk). The paper trains on
 * documents of 10 000–30 000 tokens plus ≥100 000-token concatenations (spec §2.2); slices of
 * 8000 keep the features of one sample small on a CPU, so gates trained at the default see no
 * position past 8000. Raise `--sample-tokens` to train for longer contexts.
 */
export const DEFAULT_SAMPLE_TOKENS = 8000;

const FEATURES_FORMAT = "evictbench-gate-features";
const SENTINEL = "@@EVICTBENCH_CONTEXT@@";

/** The token ids of the prompt parts around a context. */
export interface KvzipPrompt {
  /** P: template header, system prompt, user turn opener and the instruction line. */
  prefix: Int32Array;
  /** A: the assistant-turn opener (with Qwen3's empty think block). */
  assistant: Int32Array;
  repeatFirst: Int32Array;
  repeatNext: Int32Array;
}

/**
 * The "qa" prompt around a context, through the chat template when the tokenizer has one
 * (rendered with a sentinel as the context and split there); otherwise a plain prefix
 * (BOS if the tokenizer adds one, then the instruction line) and "\n\n" as A.
 *
 * @example
 * ```ts
 * const prompt = kvzipPrompt(model.tokenizer());
 * ```
 */
export function kvzipPrompt(tokenizer: TextTokenizer): KvzipPrompt {
  const ids = (text: string, special = false) =>
    Int32Array.from(tokenizer.encode(text, { addSpecialTokens: special }));
  let prefix: Int32Array;
  if (tokenizer.hasChatTemplate) {
    const rendered = tokenizer.applyChatTemplate([
      { role: "system", content: SYSTEM_PROMPT },
      { role: "user", content: QA_INSTRUCTION + SENTINEL },
    ], { addGenerationPrompt: true, extra: { enable_thinking: false } });
    const at = rendered.indexOf(SENTINEL);
    if (at < 0) {
      throw new InputError(
        `${tokenizer.dir}: the chat template drops the user message; cannot build the prompt`,
      );
    }
    prefix = ids(rendered.slice(0, at));
  } else {
    prefix = ids(QA_INSTRUCTION, true);
  }
  // The same A as the kvzip method's passes, so the targets are the scores it computes.
  const assistant = ids(assistantOpener(tokenizer));
  return { prefix, assistant, repeatFirst: ids(REPEAT_FIRST), repeatNext: ids(REPEAT_NEXT) };
}

/** Receives the hidden states of context rows [first, first + k) as [k, L, D]. */
export type HiddenSink = (firstRow: number, rows: Float32Array) => void | Promise<void>;

/** Options of {@linkcode kvzipSample}. */
export interface KvzipSampleOptions {
  /** Reconstruction chunk in tokens; default 2000. */
  reconstructionChunk?: number;
  /** Forward chunk for the prefill and the reconstruction passes; default the model's. */
  forwardChunk?: number;
  /** Receives the context's hidden states during the prefill (token-major [k, L, D]). */
  onHidden?: HiddenSink;
  /** Called after each reconstruction chunk with (done, total) chunks. */
  onChunk?: (done: number, total: number) => void;
}

/**
 * KVzip targets of one sample (spec §2.1) as [n, L, H] over the model's gated layers, streaming
 * the context's hidden states to `options.onHidden` on the way.
 *
 * @example
 * ```ts
 * const targets = await kvzipSample(model, { prompt, context }, { onHidden: (row, x) => {} });
 * ```
 */
export async function kvzipSample(
  model: Model<KvStore>,
  sample: { prompt: KvzipPrompt; context: Int32Array },
  options: KvzipSampleOptions = {},
): Promise<Float32Array> {
  const config = model.config;
  const layers = gatedLayers(config);
  const slot = new Map(layers.map((l, i) => [l, i]));
  const L = layers.length;
  const H = config.numKvHeads;
  const D = config.hiddenSize;
  const { prompt, context } = sample;
  const s = prompt.prefix.length;
  const n = context.length;
  const chunk = options.reconstructionChunk ?? DEFAULT_RECONSTRUCTION_CHUNK;
  if (!Number.isInteger(chunk) || chunk < 1) {
    throw new InputError(`reconstruction chunk: expected a positive integer, got ${chunk}`);
  }
  const targets = new Float32Array(n * L * H);
  const cache = model.createCache();
  const ids = new Int32Array(s + n);
  ids.set(prompt.prefix);
  ids.set(context, s);

  // 1. Prefill with the full cache; stream the context rows' hidden states.
  let pending: { first: number; rows: Float32Array } | null = null;
  await model.prefill(ids, cache, {
    chunkSize: options.forwardChunk,
    taps: {
      onLayer: async (tap) => {
        const li = slot.get(tap.layer);
        if (li === undefined || options.onHidden === undefined) return;
        const T = tap.positions.length;
        const skip = Math.max(0, s - tap.positions[0]);
        if (skip >= T) return;
        if (pending === null) {
          pending = { first: tap.positions[skip] - s, rows: new Float32Array((T - skip) * L * D) };
        }
        for (let t = skip; t < T; t++) {
          pending.rows.set(tap.hidden.subarray(t * D, (t + 1) * D), ((t - skip) * L + li) * D);
        }
        if (li === L - 1) {
          const done: { first: number; rows: Float32Array } = pending;
          pending = null;
          await options.onHidden(done.first, done.rows);
        }
      },
    },
  });

  // 2. Reconstruction passes, one per chunk of the context.
  const chunks = Math.ceil(n / chunk);
  for (let i = 0; i < chunks; i++) {
    const a = i * chunk;
    const b = Math.min(n, a + chunk);
    const question = i === 0
      ? prompt.repeatFirst
      : concat(prompt.repeatNext, context.subarray(Math.max(0, a - REPEAT_TAIL), a));
    const r = concat(question, prompt.assistant, context.subarray(a, b));
    await runReconstructionPass(model, cache, {
      ids: r,
      forwardChunk: options.forwardChunk ?? DEFAULT_PREFILL_CHUNK,
      ranges: { prefixEnd: s, chunkStart: s + a, chunkEnd: s + b },
    }, (layer, chunk) => {
      const li = slot.get(layer)!; // the gated layers are the global ones the pass reports
      for (let h = 0; h < H; h++) {
        const values = chunk.perHead[h];
        for (let j = 0; j < values.length; j++) {
          const at = ((chunk.positions[j] - s) * L + li) * H + h;
          if (values[j] > targets[at]) targets[at] = values[j];
        }
      }
    });
    options.onChunk?.(i + 1, chunks);
  }
  return targets;
}

function concat(...parts: Int32Array[]): Int32Array {
  const out = new Int32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Shards on disk

/** Storage dtype of the hidden states in a shard. */
export type FeatureDtype = "BF16" | "F32";

/** One shard of a features directory. */
export interface ShardEntry {
  file: string;
  /** Where the sample came from: "<corpus file>#<slice>". */
  source: string;
  tokens: number;
  /** SHA-256 (16 hex digits) of the sample's token ids: an edited corpus is extracted anew. */
  digest: string;
}

/** What produced a features directory; a reuse must match it exactly. */
export interface FeatureSettings {
  hiddenSize: number;
  numKvHeads: number;
  group: number;
  layers: number[];
  reconstructionChunk: number;
  sampleTokens: number;
  dtype: FeatureDtype;
  /** The prompt's token ids, joined (a tokenizer or template change invalidates features). */
  prompt: string;
  /** The model's {@linkcode checkpointFingerprint}: other weights of the same shape differ. */
  checkpoint: string;
}

/** manifest.json of a features directory. */
export interface FeatureManifest {
  format: string;
  version: 1;
  settings: FeatureSettings;
  shards: ShardEntry[];
}

/**
 * Writes one shard: a safetensors file whose header is known up front (n is), filled row by row.
 * Written to a temporary name and renamed by `finish`.
 */
class ShardWriter {
  #file: Deno.FsFile;
  #temp: string;
  #path: string;
  #dataStart: number;
  #hiddenBytes: number;
  #rowBytes: number;
  #rowFloats: number;
  #dtype: FeatureDtype;

  private constructor(init: {
    file: Deno.FsFile;
    temp: string;
    path: string;
    dataStart: number;
    hiddenBytes: number;
    rowFloats: number;
    dtype: FeatureDtype;
  }) {
    this.#file = init.file;
    this.#temp = init.temp;
    this.#path = init.path;
    this.#dataStart = init.dataStart;
    this.#hiddenBytes = init.hiddenBytes;
    this.#rowFloats = init.rowFloats;
    this.#dtype = init.dtype;
    this.#rowBytes = init.rowFloats * (init.dtype === "BF16" ? 2 : 4);
  }

  static async create(
    path: string,
    shape: { tokens: number; layers: number; hidden: number; heads: number },
    options: { dtype: FeatureDtype; source: string },
  ): Promise<ShardWriter> {
    const { tokens: n, layers: L, hidden: D, heads: H } = shape;
    const elem = options.dtype === "BF16" ? 2 : 4;
    const hiddenBytes = n * L * D * elem;
    const targetBytes = n * L * H * 4;
    let json = JSON.stringify({
      __metadata__: { format: FEATURES_FORMAT, source: options.source },
      hidden: { dtype: options.dtype, shape: [n, L, D], data_offsets: [0, hiddenBytes] },
      targets: {
        dtype: "F32",
        shape: [n, L, H],
        data_offsets: [hiddenBytes, hiddenBytes + targetBytes],
      },
    });
    json += " ".repeat((8 - (new TextEncoder().encode(json).length % 8)) % 8);
    const header = new TextEncoder().encode(json);
    const prefix = new Uint8Array(8);
    new DataView(prefix.buffer).setBigUint64(0, BigInt(header.length), true);
    const temp = `${path}.tmp`;
    const file = await Deno.open(temp, { write: true, create: true, truncate: true });
    await writeAllAt(file, 0, prefix);
    await writeAllAt(file, 8, header);
    const dataStart = 8 + header.length;
    await file.truncate(dataStart + hiddenBytes + targetBytes);
    return new ShardWriter({
      file,
      temp,
      path,
      dataStart,
      hiddenBytes,
      rowFloats: L * D,
      dtype: options.dtype,
    });
  }

  /** Hidden rows [k, L, D] starting at context row `first`. */
  async writeHidden(first: number, rows: Float32Array): Promise<void> {
    if (rows.length % this.#rowFloats !== 0) throw new Error("writeHidden: partial row");
    const data = this.#dtype === "BF16" ? f32ToBf16(rows) : rows;
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    await writeAllAt(this.#file, this.#dataStart + first * this.#rowBytes, bytes);
  }

  /** All targets [n, L, H]. */
  async writeTargets(targets: Float32Array): Promise<void> {
    const bytes = new Uint8Array(targets.buffer, targets.byteOffset, targets.byteLength);
    await writeAllAt(this.#file, this.#dataStart + this.#hiddenBytes, bytes);
  }

  async finish(): Promise<void> {
    this.#file.close();
    await Deno.rename(this.#temp, this.#path);
  }

  async abort(): Promise<void> {
    try {
      this.#file.close();
    } catch {
      // already closed
    }
    await Deno.remove(this.#temp).catch(() => {});
  }
}

async function writeAllAt(file: Deno.FsFile, offset: number, bytes: Uint8Array): Promise<void> {
  await file.seek(offset, Deno.SeekMode.Start);
  let done = 0;
  while (done < bytes.length) done += await file.write(bytes.subarray(done));
}

/** One document of a corpus. */
export interface CorpusDocument {
  /** Names the document in the manifest and in messages (e.g. its path). */
  name: string;
  text: string;
}

/** Options of {@linkcode extractFeatures}. */
export interface ExtractOptions {
  reconstructionChunk?: number;
  /** Context tokens per sample (a longer document is sliced); default 8000. */
  sampleTokens?: number;
  dtype?: FeatureDtype;
  forwardChunk?: number;
  /** Progress: a line of text per finished sample (and per reused one). */
  onSample?: (info: { index: number; source: string; tokens: number; reused: boolean }) => void;
}

/**
 * Extract features of every document into `dir` (created if needed). Shards already in `dir`
 * from the same settings are kept (an interrupted extraction resumes); a `dir` made with other
 * settings is an InputError.
 *
 * @example
 * ```ts
 * const docs = [{ name: "a.txt", text }];
 * const manifest = await extractFeatures(model, { docs, dir: "a.features" });
 * ```
 */
export async function extractFeatures(
  model: Model<KvStore>,
  corpus: { docs: readonly CorpusDocument[]; dir: string },
  options: ExtractOptions = {},
): Promise<FeatureManifest> {
  const { docs, dir } = corpus;
  const config = model.config;
  const prompt = kvzipPrompt(model.tokenizer());
  const overhead = prompt.prefix.length + prompt.repeatNext.length + REPEAT_TAIL +
    prompt.assistant.length;
  const reconstructionChunk = options.reconstructionChunk ?? DEFAULT_RECONSTRUCTION_CHUNK;
  const maxSample = config.maxPositionEmbeddings - overhead - reconstructionChunk;
  const sampleTokens = Math.min(options.sampleTokens ?? DEFAULT_SAMPLE_TOKENS, maxSample);
  if (sampleTokens < 1) {
    throw new InputError(
      `${model.dir}: max_position_embeddings ${config.maxPositionEmbeddings} leaves no room for a context after the prompt and a ${reconstructionChunk}-token reconstruction chunk`,
    );
  }
  const settings: FeatureSettings = {
    hiddenSize: config.hiddenSize,
    numKvHeads: config.numKvHeads,
    group: config.numHeads / config.numKvHeads,
    layers: gatedLayers(config),
    reconstructionChunk,
    sampleTokens,
    dtype: options.dtype ?? "BF16",
    prompt: [prompt.prefix, prompt.assistant, prompt.repeatFirst, prompt.repeatNext]
      .map((a) => a.join(" ")).join(" | "),
    checkpoint: await checkpointFingerprint(model.dir),
  };
  await Deno.mkdir(dir, { recursive: true });
  const previous = await readManifest(dir, { optional: true });
  if (previous !== null && JSON.stringify(previous.settings) !== JSON.stringify(settings)) {
    throw new InputError(
      `${dir}: features there were extracted with other settings (${
        settingsDifference(previous.settings, settings)
      }); remove the directory or choose another`,
    );
  }
  const done = new Map((previous?.shards ?? []).map((s) => [s.source, s]));
  const manifest: FeatureManifest = { format: FEATURES_FORMAT, version: 1, settings, shards: [] };
  const tokenizer = model.tokenizer();
  const L = settings.layers.length;
  for (const doc of docs) {
    const all = Int32Array.from(tokenizer.encode(doc.text, { addSpecialTokens: false }));
    for (let start = 0, slice = 0; start < all.length; start += sampleTokens, slice++) {
      const context = all.subarray(start, Math.min(all.length, start + sampleTokens));
      const source = `${doc.name}#${slice}`;
      const index = manifest.shards.length;
      const file = `shard-${String(index).padStart(5, "0")}.safetensors`;
      const digest = await shortDigest(
        new Uint8Array(context.buffer, context.byteOffset, context.byteLength).slice(),
      );
      const old = done.get(source);
      if (
        old !== undefined && old.tokens === context.length && old.file === file &&
        old.digest === digest
      ) {
        manifest.shards.push(old);
        options.onSample?.({ index, source, tokens: context.length, reused: true });
        continue;
      }
      const writer = await ShardWriter.create(`${dir}/${file}`, {
        tokens: context.length,
        layers: L,
        hidden: config.hiddenSize,
        heads: config.numKvHeads,
      }, { dtype: settings.dtype, source });
      try {
        const targets = await kvzipSample(model, { prompt, context }, {
          reconstructionChunk,
          forwardChunk: options.forwardChunk,
          onHidden: (first, rows) => writer.writeHidden(first, rows),
        });
        await writer.writeTargets(targets);
        await writer.finish();
      } catch (error) {
        await writer.abort();
        throw error;
      }
      manifest.shards.push({ file, source, tokens: context.length, digest });
      await writeManifest(dir, manifest);
      options.onSample?.({ index, source, tokens: context.length, reused: false });
    }
  }
  if (manifest.shards.length === 0) {
    throw new InputError(`corpus: the ${docs.length} document(s) hold no tokens`);
  }
  await writeManifest(dir, manifest);
  return manifest;
}

/** The settings that differ, by name ("checkpoint", "sampleTokens" …), for the refusal. */
function settingsDifference(a: FeatureSettings, b: FeatureSettings): string {
  const keys = Object.keys(b) as (keyof FeatureSettings)[];
  const differing = keys.filter((k) => JSON.stringify(a[k]) !== JSON.stringify(b[k]));
  const words: Partial<Record<keyof FeatureSettings, string>> = {
    checkpoint: "the model's weights",
    prompt: "the prompt's tokens",
    reconstructionChunk: "--chunk",
    sampleTokens: "--sample-tokens",
    dtype: "--feature-dtype",
  };
  return differing.length === 0 ? "format" : differing.map((k) => words[k] ?? k).join(", ");
}

async function writeManifest(dir: string, manifest: FeatureManifest): Promise<void> {
  const temp = `${dir}/manifest.json.tmp`;
  await Deno.writeTextFile(temp, JSON.stringify(manifest, null, 2) + "\n");
  await Deno.rename(temp, `${dir}/manifest.json`);
}

/** Read `dir`/manifest.json; with `optional`, a missing one gives null. */
export async function readManifest(
  dir: string,
  options: { optional?: boolean } = {},
): Promise<FeatureManifest | null> {
  const path = `${dir}/manifest.json`;
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound && options.optional) return null;
    throw new InputError(`${path}: cannot read the features manifest`, { cause: error });
  }
  let parsed: FeatureManifest;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new InputError(`${path}: not valid JSON`, { cause: error });
  }
  if (parsed?.format !== FEATURES_FORMAT || !Array.isArray(parsed.shards)) {
    throw new InputError(`${path}: not an evictbench gate features manifest`);
  }
  return parsed;
}

// ---------------------------------------------------------------------------------------------
// Reading batches

interface OpenShard {
  file: Deno.FsFile;
  tokens: number;
  hiddenAt: number;
  targetsAt: number;
}

/** One gathered batch: per gated layer, x [B, D] and y [B, H]. */
export interface FeatureBatch {
  tokens: number;
  x: Float32Array[];
  y: Float32Array[];
}

/**
 * The features of a directory, read on demand: tokens are numbered globally in manifest order,
 * and {@linkcode FeatureSet.gather} reads any set of them (two reads per token).
 *
 * @example
 * ```ts
 * const set = await FeatureSet.open("a.features");
 * const batch = set.gather(Int32Array.of(0, 5, 9));
 * set.close();
 * ```
 */
export class FeatureSet {
  readonly settings: FeatureSettings;
  /** Total tokens. */
  readonly tokens: number;
  readonly #shards: OpenShard[];
  /** Global index of each shard's first token. */
  readonly #starts: Int32Array;

  private constructor(settings: FeatureSettings, shards: OpenShard[]) {
    this.settings = settings;
    this.#shards = shards;
    this.#starts = new Int32Array(shards.length);
    let total = 0;
    shards.forEach((s, i) => {
      this.#starts[i] = total;
      total += s.tokens;
    });
    this.tokens = total;
  }

  /** Open every shard of `dir` and check it against the manifest. */
  static async open(dir: string): Promise<FeatureSet> {
    const manifest = (await readManifest(dir))!;
    const { settings } = manifest;
    const L = settings.layers.length;
    const shards: OpenShard[] = [];
    try {
      for (const entry of manifest.shards) {
        const path = `${dir}/${entry.file}`;
        const st = await openSafetensors(path);
        const hidden = st.info("hidden");
        const targets = st.info("targets");
        const want = (shape: number[] | undefined, dims: number[]) =>
          shape !== undefined && shape.join() === dims.join();
        const ok = hidden !== undefined && targets !== undefined &&
          hidden.dtype === settings.dtype && targets.dtype === "F32" &&
          want(hidden.shape, [entry.tokens, L, settings.hiddenSize]) &&
          want(targets.shape, [entry.tokens, L, settings.numKvHeads]);
        const dataStart = st.dataStart;
        st.close();
        if (!ok) {
          throw new InputError(
            `${path}: shard tensors do not match the manifest (${entry.tokens} tokens, ${L} layers)`,
          );
        }
        shards.push({
          file: await Deno.open(path, { read: true }),
          tokens: entry.tokens,
          hiddenAt: dataStart + hidden!.begin,
          targetsAt: dataStart + targets!.begin,
        });
      }
    } catch (error) {
      for (const s of shards) s.file.close();
      throw error;
    }
    return new FeatureSet(settings, shards);
  }

  /** Hidden states and targets of the tokens `indices` (global), per layer. */
  gather(indices: Int32Array): FeatureBatch {
    const { hiddenSize: D, numKvHeads: H, dtype } = this.settings;
    const L = this.settings.layers.length;
    const B = indices.length;
    const x = Array.from({ length: L }, () => new Float32Array(B * D));
    const y = Array.from({ length: L }, () => new Float32Array(B * H));
    const elem = dtype === "BF16" ? 2 : 4;
    const hiddenRow = new Uint8Array(L * D * elem);
    const targetRow = new Uint8Array(L * H * 4);
    const targetF32 = new Float32Array(targetRow.buffer);
    // Visit in file order; each token lands in its own batch slot.
    const order = Int32Array.from({ length: B }, (_, i) => i).sort((a, b) =>
      indices[a] - indices[b]
    );
    for (const slotIndex of order) {
      const g = indices[slotIndex];
      const shardIndex = this.#shardOf(g);
      const shard = this.#shards[shardIndex];
      const local = g - this.#starts[shardIndex];
      readAt(shard.file, shard.hiddenAt + local * hiddenRow.length, hiddenRow);
      readAt(shard.file, shard.targetsAt + local * targetRow.length, targetRow);
      const values = dtype === "BF16"
        ? bf16BitsToF32(new Uint16Array(hiddenRow.buffer))
        : new Float32Array(hiddenRow.buffer);
      for (let l = 0; l < L; l++) {
        x[l].set(values.subarray(l * D, (l + 1) * D), slotIndex * D);
        y[l].set(targetF32.subarray(l * H, (l + 1) * H), slotIndex * H);
      }
    }
    return { tokens: B, x, y };
  }

  /** Close every shard file. */
  close(): void {
    for (const s of this.#shards) s.file.close();
  }

  #shardOf(g: number): number {
    if (g < 0 || g >= this.tokens) {
      throw new RangeError(`token ${g} is outside [0, ${this.tokens})`);
    }
    let lo = 0;
    let hi = this.#starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.#starts[mid] <= g) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }
}

function readAt(file: Deno.FsFile, offset: number, out: Uint8Array): void {
  file.seekSync(offset, Deno.SeekMode.Start);
  let filled = 0;
  while (filled < out.length) {
    const n = file.readSync(out.subarray(filled));
    if (n === null || n === 0) throw new InputError(`features shard ended early (truncated?)`);
    filled += n;
  }
}
