/**
 * OpenAI MRCR rows (`openai/mrcr`: `prompt` is a JSON string of chat messages, plus `answer`,
 * `random_string_to_prepend`, `n_needles`, `desired_msg_index`, `total_messages`, `n_chars`;
 * Parquet or JSONL) rendered as FastKVzip does (spec §6.6, `build_prompt_text`): every message
 * but the last becomes "User: {content}\n\n" (role user) or "Assistant: {content}\n\n" (any
 * other role), which is the context; the last message's content is the query, graded with
 * `mrcr_grade`, 512 new tokens (the model wrapper's default, which MRCR does not change).
 *
 * FastKVzip keeps rows whose rendered context is at most 128 000 tokens of the model's
 * tokenizer, up to 2400: pass `countTokens` (and `maxTokens`, `limit`) to do the same.
 *
 * @module
 */

import { InputError } from "../../errors.ts";
import type { Sample } from "../types.ts";
import { optionalField, readRows, type Row, stringField } from "./rows.ts";

/** Options of {@linkcode loadMrcr}. */
export interface MrcrOptions {
  /** Task name on the samples (default "mrcr"). */
  task?: string;
  /** Keep at most this many samples (FastKVzip: 2400). */
  limit?: number;
  /** Token count of a rendered context; rows above `maxTokens` are skipped. */
  countTokens?: (text: string) => number;
  /** Token limit for `countTokens` (default 128 000). */
  maxTokens?: number;
  /** Keep only rows with this many needles. */
  nNeedles?: number;
}

/** One chat message of an MRCR prompt. */
export interface MrcrMessage {
  /** "user", "assistant" or "system". */
  role: string;
  /** The message text. */
  content: string;
}

function messagesOf(row: Row): MrcrMessage[] {
  const text = stringField(row, "prompt");
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new InputError(
      `${row.where}: field "prompt" is not JSON (${
        (error as Error).message
      }); expected a list of messages`,
    );
  }
  if (!Array.isArray(value) || value.length === 0) {
    throw new InputError(`${row.where}: field "prompt" must be a non-empty JSON list of messages`);
  }
  return value.map((m, i) => {
    if (typeof m?.role !== "string" || typeof m?.content !== "string") {
      throw new InputError(`${row.where}: prompt message ${i} needs string "role" and "content"`);
    }
    return { role: m.role, content: m.content };
  });
}

/** FastKVzip's `build_prompt_text`: the rendered context and the last message. */
export function renderMrcrPrompt(messages: readonly MrcrMessage[]): [string, string] {
  let context = "";
  for (const message of messages.slice(0, -1)) {
    context += message.role === "user"
      ? `User: ${message.content}\n\n`
      : `Assistant: ${message.content}\n\n`;
  }
  return [context, messages.at(-1)!.content];
}

/**
 * Load MRCR rows.
 *
 * @example
 * ```ts
 * const samples = await loadMrcr("data/mrcr/2needle.parquet", { limit: 100 });
 * ```
 */
export async function loadMrcr(path: string, options: MrcrOptions = {}): Promise<Sample[]> {
  const task = options.task ?? "mrcr";
  const maxTokens = options.maxTokens ?? 128_000;
  const samples: Sample[] = [];
  for (const row of await readRows(path)) {
    if (options.limit !== undefined && samples.length >= options.limit) break;
    const nNeedles = optionalField(row, "n_needles");
    if (options.nNeedles !== undefined && nNeedles !== options.nNeedles) continue;
    const [context, query] = renderMrcrPrompt(messagesOf(row));
    const answer = stringField(row, "answer");
    const prefix = stringField(row, "random_string_to_prepend");
    let nTokens: number | undefined;
    if (options.countTokens !== undefined) {
      nTokens = options.countTokens(context);
      if (nTokens > maxTokens) continue;
    }
    samples.push({
      id: `${task}/${samples.length}`,
      task,
      context,
      queries: [{
        prompt: query,
        answers: [answer],
        metric: "mrcr_grade",
        maxNewTokens: 512,
        meta: { randomStringToPrepend: prefix },
      }],
      meta: {
        source: "mrcr",
        row: row.where,
        nNeedles,
        nTokens,
        desiredMsgIndex: optionalField(row, "desired_msg_index"),
        totalMessages: optionalField(row, "total_messages"),
      },
    });
  }
  return samples;
}
