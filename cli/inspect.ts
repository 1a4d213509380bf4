/**
 * `evictbench inspect`: one prefill with one-shot eviction, written out for every layer and KV
 * head: the entries' absolute positions, the method's scores and the positions kept.
 *
 * The JSON holds `report` (the eviction report) and `layers[l].heads[h]` with `positions`,
 * `scores` and `kept`. Scores that JSON cannot hold are written as the strings "Infinity",
 * "-Infinity" and "NaN" (NaN: not scored, e.g. the prefix or a sliding-window layer).
 *
 * @module
 */

import { InputError } from "../errors.ts";
import { Model } from "../engine/model.ts";
import { OrtAttention } from "../kernels/attention_ort.ts";
import {
  getMethod,
  parseMethodParams,
  parseParamArgs,
  type PolicySpec,
  prefillWithEviction,
  SELECTION_POLICIES,
  type SelectionPolicy,
} from "../methods/mod.ts";
import { parseIds } from "./forward.ts";
import { openOutputFile } from "./output.ts";

/** Options of the inspect command, as commander parses them (all text: checked here). */
export interface InspectCommandOptions {
  model: string;
  method: string;
  param?: string[];
  kept: string;
  policy?: string;
  safeguard?: string;
  window?: string;
  sinks?: string;
  prefix?: string;
  ids?: string;
  text?: string;
  out: string;
  chunkSize?: string;
  threads?: string;
  /** Compute backend (default "cpu", as sweeps). */
  backend?: "auto" | "cpu" | "webgpu";
}

function number(flag: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (text.trim() === "" || !Number.isFinite(n)) {
    throw new InputError(`${flag}: expected a number, got "${text}"`);
  }
  return n;
}

function count(flag: string, text: string | undefined, fallback: number, min = 0): number {
  const n = number(flag, text, fallback);
  if (!Number.isInteger(n) || n < min) {
    throw new InputError(
      `${flag}: expected ${min === 0 ? "a non-negative" : "a positive"} integer, got "${text}"`,
    );
  }
  return n;
}

function jsonNumber(x: number): number | string {
  return Number.isFinite(x) ? x : String(x);
}

/** Run the inspect command. */
export async function runInspectCommand(options: InspectCommandOptions): Promise<void> {
  // Everything about the input is checked before the model loads.
  const method = getMethod(options.method);
  const params = parseMethodParams(method, parseParamArgs(method, options.param ?? []));
  const keptRatio = number("--kept", options.kept, NaN);
  if (!(keptRatio > 0 && keptRatio <= 1)) {
    throw new InputError(`--kept: expected a kept ratio in (0, 1], got "${options.kept}"`);
  }
  let policy: PolicySpec | undefined;
  if (options.policy !== undefined || options.safeguard !== undefined) {
    const name = (options.policy ?? method.policy.policy) as SelectionPolicy;
    if (!SELECTION_POLICIES.includes(name)) {
      throw new InputError(
        `--policy: expected one of ${SELECTION_POLICIES.join(", ")}, got "${options.policy}"`,
      );
    }
    const safeguard = number("--safeguard", options.safeguard, method.policy.safeguard ?? 0);
    if (!(safeguard >= 0 && safeguard <= 1)) {
      throw new InputError(
        `--safeguard: expected a fraction in [0, 1], got "${options.safeguard}"`,
      );
    }
    policy = { policy: name, safeguard };
  }
  const window = count("--window", options.window, 0);
  const sinks = count("--sinks", options.sinks, 0);
  const prefixTokens = count("--prefix", options.prefix, 0);
  const chunkSize = options.chunkSize === undefined
    ? undefined
    : count("--chunk-size", options.chunkSize, 0, 1);
  const threads = options.threads === undefined
    ? undefined
    : count("--threads", options.threads, 0, 1);
  if ((options.ids === undefined) === (options.text === undefined)) {
    throw new InputError("inspect: give exactly one of --ids or --text");
  }
  const idsFromFlag = options.ids === undefined ? null : parseIds(options.ids);
  const out = await openOutputFile(options.out, "--out");
  try {
    const backend = options.backend ?? "cpu";
    const model = await Model.load(
      options.model,
      backend === "cpu"
        ? { threads, attention: new OrtAttention({ threads }) }
        : { threads, backend },
    );
    const ids = idsFromFlag ??
      Int32Array.from(model.tokenizer().encode(options.text!, { addSpecialTokens: false }));
    if (ids.length === 0) throw new InputError("inspect: the input has no tokens");
    if (prefixTokens >= ids.length) {
      throw new InputError(
        `--prefix: expected fewer tokens than the input (${ids.length}), got ${prefixTokens}`,
      );
    }
    const result = await prefillWithEviction(model, {
      prefix: ids.subarray(0, prefixTokens),
      context: ids.subarray(prefixTokens),
    }, {
      method,
      params: params as Record<string, unknown>,
      keptRatio,
      policy,
      window,
      sinks,
      chunkSize,
      keepScores: true,
    });
    const { numLayers, numKvHeads } = model.config;
    const layers = [];
    for (let l = 0; l < numLayers; l++) {
      const heads = [];
      for (let h = 0; h < numKvHeads; h++) {
        const positions = result.scores?.positions[l][h] ?? result.cache.positions(l, h);
        const scores = result.scores?.scores[l][h] ?? new Float32Array(positions.length).fill(NaN);
        heads.push({
          head: h,
          positions: [...positions],
          scores: Array.from(scores, jsonNumber),
          kept: [...result.cache.positions(l, h)],
        });
      }
      layers.push({ layer: l, decided: model.config.layers[l].slidingWindow === null, heads });
    }
    const json = {
      model: options.model,
      backend: model.backend,
      method: method.id,
      params,
      policy: policy ?? method.policy,
      keptRatio,
      window,
      sinks,
      tokens: ids.length,
      prefixTokens,
      report: result.report,
      layers,
    };
    out.close();
    await Deno.writeTextFile(options.out, JSON.stringify(json) + "\n");
    const r = result.report;
    console.log(
      `${method.id} at kept ratio ${keptRatio}: ${r.evicted} of ${r.population} entries up for ` +
        `decision evicted, kept ratio achieved ${r.keptRatioAchieved.toFixed(3)}; ${numLayers} ` +
        `layers × ${numKvHeads} KV heads written to ${options.out}`,
    );
  } catch (error) {
    try {
      out.close();
    } catch {
      // Already closed.
    }
    await Deno.remove(options.out).catch(() => {});
    throw error;
  }
}
