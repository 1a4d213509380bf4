/**
 * Prompts in the spec's layout (§6.2): `[PREFIX][CONTEXT]["\n\n" + query][POSTFIX]`, where the
 * prefix holds the chat template's opening (system message, user header) and the instruction
 * line, and the postfix is the assistant-turn opener (plus Qwen3's empty think block and the
 * task's answer prefix). Only the context is subject to eviction, so each part is tokenized on
 * its own and returned with its ids: the engine prefills prefix + context, compresses the
 * context, then appends query + postfix for each query.
 *
 * With a chat template, the user message is rendered once with placeholders in the place of
 * the context and the query, and the rendered text is split at them.
 *
 * @module
 */

import { InputError } from "../errors.ts";
import type { ChatMessage, TextTokenizer } from "../engine/tokenizer.ts";
import { DEFAULT_INSTRUCTION, type PromptOptions, type Query, type Sample } from "./types.ts";

export type { PromptOptions } from "./types.ts";

/** The system message of the spec's prefixes. */
export const DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant.";

/** Qwen3's empty think block, which turns thinking off for the prefill tasks. */
export const EMPTY_THINK_BLOCK = "<think>\n\n</think>\n\n";

/** The postfix of the plain format when a query has no answer prefix. */
export const PLAIN_ANSWER_CUE = "Answer:";

const CONTEXT_MARK = "\u27e6evictbench:context\u27e7";
const QUERY_MARK = "\u27e6evictbench:query\u27e7";

/** Text and token ids of one part of a prompt. */
export interface PromptSegment {
  text: string;
  ids: number[];
}

/** The fixed text around every prompt of one tokenizer and set of options. */
export interface PromptFrame {
  format: "chat" | "plain";
  /** Rendered text before the instruction (chat) or "" (plain). */
  head: string;
  /** Special ids the tokenizer prepends (plain format only, e.g. BOS). */
  leadingIds: number[];
  /** Rendered text after the query (chat) or "\n\n" (plain), before any answer prefix. */
  tail: string;
}

/** One query's own parts: the query text and the postfix after it. */
export interface QueryParts {
  query: PromptSegment;
  postfix: PromptSegment;
}

/** A sample's prompts: the shared prefix and context, then each query's parts. */
export interface SamplePrompt {
  format: "chat" | "plain";
  prefix: PromptSegment;
  context: PromptSegment;
  queries: QueryParts[];
}

/** The four parts of one query's prompt. */
export interface QueryPrompt {
  format: "chat" | "plain";
  prefix: PromptSegment;
  context: PromptSegment;
  query: PromptSegment;
  postfix: PromptSegment;
}

const frames = new WeakMap<TextTokenizer, Map<string, PromptFrame>>();

function renderChat(
  tokenizer: TextTokenizer,
  systemPrompt: string | null,
  thinking: "off" | "on",
): string {
  const user = CONTEXT_MARK + QUERY_MARK;
  const extra = { enable_thinking: thinking === "on" };
  const withSystem: ChatMessage[] = systemPrompt === null
    ? [{ role: "user", content: user }]
    : [{ role: "system", content: systemPrompt }, { role: "user", content: user }];
  try {
    return tokenizer.applyChatTemplate(withSystem, { addGenerationPrompt: true, extra });
  } catch (error) {
    if (systemPrompt === null) throw error;
    // Templates that refuse a system turn: put it at the top of the user turn, as Gemma's do.
    return tokenizer.applyChatTemplate(
      [{ role: "user", content: systemPrompt + "\n\n" + user }],
      { addGenerationPrompt: true, extra },
    );
  }
}

function leadingSpecialIds(tokenizer: TextTokenizer): number[] {
  const bare = tokenizer.encode("x", { addSpecialTokens: false });
  const full = tokenizer.encode("x", { addSpecialTokens: true });
  for (let start = 0; start + bare.length <= full.length; start++) {
    if (bare.every((id, i) => full[start + i] === id)) return full.slice(0, start);
  }
  return [];
}

/**
 * The frame of every prompt for `tokenizer` and `options` (cached per tokenizer).
 * A chat template that drops or reorders the placeholders is an {@linkcode InputError}.
 */
export function promptFrame(tokenizer: TextTokenizer, options: PromptOptions = {}): PromptFrame {
  const format = options.format ?? "auto";
  const systemPrompt = options.systemPrompt === undefined
    ? DEFAULT_SYSTEM_PROMPT
    : options.systemPrompt;
  const thinking = options.thinking ?? "off";
  const key = JSON.stringify([format, systemPrompt, thinking]);
  let byOptions = frames.get(tokenizer);
  if (byOptions === undefined) {
    byOptions = new Map();
    frames.set(tokenizer, byOptions);
  }
  const cached = byOptions.get(key);
  if (cached !== undefined) return cached;

  let frame: PromptFrame;
  const useChat = format === "chat" || (format === "auto" && tokenizer.hasChatTemplate);
  if (useChat) {
    if (!tokenizer.hasChatTemplate) {
      throw new InputError(
        `${tokenizer.dir}: prompt format "chat" needs a chat template, and the tokenizer has none`,
      );
    }
    const rendered = renderChat(tokenizer, systemPrompt, thinking);
    const c = rendered.indexOf(CONTEXT_MARK);
    const q = rendered.indexOf(QUERY_MARK);
    if (
      c < 0 || q < 0 || rendered.indexOf(CONTEXT_MARK, c + 1) >= 0 ||
      rendered.indexOf(QUERY_MARK, q + 1) >= 0 || q !== c + CONTEXT_MARK.length
    ) {
      throw new InputError(
        `${tokenizer.dir}: the chat template does not keep the user message intact, so the prompt cannot be split into prefix, context, query and postfix`,
      );
    }
    let tail = rendered.slice(q + QUERY_MARK.length);
    const template = tokenizer.chatTemplate ?? "";
    if (thinking === "off" && template.includes("<think>") && !tail.includes("</think>")) {
      tail += EMPTY_THINK_BLOCK;
    }
    frame = { format: "chat", head: rendered.slice(0, c), leadingIds: [], tail };
  } else {
    // Base models get no system line unless one is asked for explicitly.
    const head = typeof options.systemPrompt === "string" ? options.systemPrompt + "\n\n" : "";
    frame = { format: "plain", head, leadingIds: leadingSpecialIds(tokenizer), tail: "\n\n" };
  }
  byOptions.set(key, frame);
  return frame;
}

function segment(tokenizer: TextTokenizer, text: string, leading: number[] = []): PromptSegment {
  const ids = text.length === 0 ? [] : tokenizer.encode(text, { addSpecialTokens: false });
  return { text, ids: leading.length === 0 ? ids : [...leading, ...ids] };
}

/** The text of a query as it follows the context: "\n\n" + the stripped query. */
export function queryText(query: Pick<Query, "prompt">): string {
  return "\n\n" + query.prompt.trim();
}

/**
 * The postfix text of a query under `frame`. In the plain format a query without an answer
 * prefix gets the cue {@linkcode PLAIN_ANSWER_CUE}, and one whose answer prefix is blank (its
 * text ends with its own cue) gets only that whitespace (the query text is stripped), so the
 * model answers right after it.
 */
export function postfixText(frame: PromptFrame, query: Pick<Query, "answerPrefix">): string {
  const answerPrefix = query.answerPrefix?.trim() ?? "";
  if (frame.format === "chat") {
    return answerPrefix === "" ? frame.tail : frame.tail + answerPrefix;
  }
  if (query.answerPrefix !== undefined && answerPrefix === "") return query.answerPrefix;
  return frame.tail + (answerPrefix === "" ? PLAIN_ANSWER_CUE : answerPrefix);
}

/** The prefix text: the frame's head and the instruction line. */
export function prefixText(frame: PromptFrame, instruction: string | undefined): string {
  return frame.head + (instruction ?? DEFAULT_INSTRUCTION);
}

/**
 * Render every prompt of a sample: prefix and context once, then each query with its postfix.
 *
 * @example
 * ```ts
 * const p = renderSamplePrompt(tokenizer, sample);
 * const first = [...p.prefix.ids, ...p.context.ids, ...p.queries[0].query.ids, ...p.queries[0].postfix.ids];
 * ```
 */
export function renderSamplePrompt(
  tokenizer: TextTokenizer,
  sample: Pick<Sample, "instruction" | "context" | "queries">,
  options: PromptOptions = {},
): SamplePrompt {
  const frame = promptFrame(tokenizer, options);
  return {
    format: frame.format,
    prefix: segment(tokenizer, prefixText(frame, sample.instruction), frame.leadingIds),
    context: segment(tokenizer, sample.context),
    queries: sample.queries.map((q) => ({
      query: segment(tokenizer, queryText(q)),
      postfix: segment(tokenizer, postfixText(frame, q)),
    })),
  };
}

/** The four parts of query `queryIndex`'s prompt. */
export function buildPrompt(
  tokenizer: TextTokenizer,
  sample: Pick<Sample, "instruction" | "context" | "queries">,
  options: PromptOptions & { queryIndex?: number } = {},
): QueryPrompt {
  const index = options.queryIndex ?? 0;
  if (!Number.isInteger(index) || index < 0 || index >= sample.queries.length) {
    throw new InputError(
      `queryIndex ${index} is out of range (the sample has ${sample.queries.length} queries)`,
    );
  }
  const one = { ...sample, queries: [sample.queries[index]] };
  const p = renderSamplePrompt(tokenizer, one, options);
  return { format: p.format, prefix: p.prefix, context: p.context, ...p.queries[0] };
}

/** All ids of one query's prompt, in order. */
export function promptIds(prompt: QueryPrompt): number[] {
  return [...prompt.prefix.ids, ...prompt.context.ids, ...prompt.query.ids, ...prompt.postfix.ids];
}

/** All text of one query's prompt, in order. */
export function promptText(prompt: QueryPrompt): string {
  return prompt.prefix.text + prompt.context.text + prompt.query.text + prompt.postfix.text;
}

/**
 * The length in tokens of the longest prompt a sample forms (prefix + context + the longest
 * query with its postfix): the length the generators fit to a target.
 */
export function samplePromptTokens(prompt: SamplePrompt): number {
  let longest = 0;
  for (const q of prompt.queries) {
    longest = Math.max(longest, q.query.ids.length + q.postfix.ids.length);
  }
  return prompt.prefix.ids.length + prompt.context.ids.length + longest;
}

/**
 * What a perfect model would write after the prompt: the generator's worked `meta.completion`
 * (a solution, a fenced function) when there is one, else the answers joined by ", ".
 */
export function referenceCompletion(query: Pick<Query, "answers" | "meta">): string {
  const completion = query.meta?.completion;
  return typeof completion === "string" ? completion : query.answers.join(", ");
}
