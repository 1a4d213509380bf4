/**
 * `evictbench forward`: the logits of every position, as raw little-endian float32 [T, vocab],
 * for external fidelity checks.
 *
 * @module
 */

import { InputError } from "../errors.ts";
import { DEFAULT_PREFILL_CHUNK, Model } from "../engine/model.ts";
import { openOutputFile } from "./output.ts";

/** Options of the forward command, as commander parses them. */
export interface ForwardCommandOptions {
  model: string;
  ids?: string;
  text?: string;
  out: string;
  chunkSize?: number;
  threads?: number;
  /** Compute backend (default "auto"). */
  backend?: "auto" | "cpu" | "webgpu";
}

/** Parse "1,2,3" into token ids, naming the flag on failure. */
export function parseIds(text: string, flag = "--ids"): Int32Array {
  const parts = text.split(",").map((s) => s.trim());
  const ids = new Int32Array(parts.length);
  for (let i = 0; i < parts.length; i++) {
    const n = Number(parts[i]);
    if (parts[i] === "" || !Number.isInteger(n) || n < 0 || n > 2 ** 31 - 1) {
      throw new InputError(
        `${flag}: item ${i + 1} "${parts[i]}" is not a non-negative integer token id`,
      );
    }
    ids[i] = n;
  }
  return ids;
}

/** Run the forward command. */
export async function runForwardCommand(options: ForwardCommandOptions): Promise<void> {
  if ((options.ids === undefined) === (options.text === undefined)) {
    throw new InputError("forward: give exactly one of --ids or --text");
  }
  const out = await openOutputFile(options.out, "--out");
  try {
    const model = await Model.load(options.model, {
      threads: options.threads,
      backend: options.backend ?? "auto",
    });
    let ids: Int32Array;
    if (options.ids !== undefined) {
      ids = parseIds(options.ids);
    } else {
      const tokenizer = model.tokenizer();
      ids = Int32Array.from(tokenizer.encode(options.text!, { addSpecialTokens: false }));
    }
    if (ids.length === 0) throw new InputError("forward: the input has no tokens");
    const cache = model.createCache();
    const chunk = options.chunkSize ?? DEFAULT_PREFILL_CHUNK;
    for (let start = 0; start < ids.length; start += chunk) {
      const logits = await model.forward(ids.subarray(start, start + chunk), cache, {
        logits: "all",
      });
      await writeAll(out, new Uint8Array(logits.buffer, logits.byteOffset, logits.byteLength));
    }
    model.dispose();
  } catch (error) {
    out.close();
    await Deno.remove(options.out).catch(() => {});
    throw error;
  }
  out.close();
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.length) written += await file.write(bytes.subarray(written));
}
