/**
 * LongBench v1 JSONL (`{input, context, answers, length, dataset, language, all_classes, _id}`,
 * one file per dataset, LongBench-E files `*_e.jsonl` alike) for the English tasks, with the
 * dataset's prompt template and `max_new_tokens` from LongBench's `config/dataset2prompt.json`
 * and `dataset2maxlen.json` (THUDM/LongBench 2e00731, templates verbatim, typos included).
 *
 * The template is split at `{context}`: the text before it is the sample's instruction (never
 * evicted), the row's context is the context, and the text after it, with `{input}` filled in,
 * is the query. The whitespace that separated context and query in the template is moved to
 * `meta.separator` (the prompt builder puts its own "\n\n" there). What LongBench's `pred.py`
 * and `eval.py` do per dataset: trec, triviaqa, samsum, lcc and repobench-p render without the
 * chat template (`sample.prompt.format` "plain"; `meta.chatTemplate` false); samsum stops at a
 * newline (`stopStrings`); `firstLine` for the first-line cut of trec, triviaqa and samsum;
 * `allClasses` for classification.
 *
 * A prompt longer than the model's budget: `pred.py` cuts it in the middle, with `max_length`
 * from `config/model2maxlen.json` (3500 for the 4k-window chat models, 31500 for the 32k ones).
 * With `truncation` (the `longbench_file` task's `maxLength` option) this loader does the same
 * under the model's tokenizer: it measures the plain templated prompt (instruction + context +
 * query, before any chat template) as `tokenizer(prompt)` does, special tokens such as BOS
 * included, and when that is longer than `maxLength` tokens keeps the text of its first and its
 * last `floor(maxLength / 2)` tokens, each decoded without special tokens and with the
 * tokenizer's own clean-up, then joined. The cut must fall in the context: a half that ends
 * inside the instruction or begins inside the query is an {@linkcode InputError}. A cut sample
 * records `meta.truncated` (`promptTokens` before the cut, `keptTokens`). Without `truncation`
 * a sample keeps its whole context, and a sweep refuses one beyond the model's
 * `max_position_embeddings` before any work, naming its length.
 *
 * Where this differs from `pred.py`, and why: evictbench tokenizes the instruction, the context
 * and the query each on its own (only the context may be evicted) and puts "\n\n" in place of
 * the template's separator, so the cut prompt is encoded again from the decoded text rather
 * than kept as the cut ids. At the two seams of the cut (a token split in a word, a character
 * split between tokens, decoded as U+FFFD as in `pred.py`) and at the context's edges the new
 * token count can differ from `2 * floor(maxLength / 2)` by a few tokens. A clean-up of spaces
 * that joins text across the instruction's or the query's edge (an instruction ending in a
 * space before a context starting with ",") reads as a cut into them.
 *
 * @module
 */

import { InputError } from "../../errors.ts";
import type { TextTokenizer } from "../../engine/tokenizer.ts";
import { LONGBENCH_FIRST_LINE, LONGBENCH_METRICS } from "../metrics/mod.ts";
import type { Sample } from "../types.ts";
import { fileStem, optionalField, readJsonl, stringField, stringListField } from "./rows.ts";

/** LongBench `dataset2prompt.json`, English tasks. */
export const LONGBENCH_PROMPTS: Readonly<Record<string, string>> = {
  narrativeqa:
    "You are given a story, which can be either a novel or a movie script, and a question. Answer the question asconcisely as you can, using a single phrase if possible. Do not provide any explanation.\n\nStory: {context}\n\nNow, answer the question based on the story asconcisely as you can, using a single phrase if possible. Do not provide any explanation.\n\nQuestion: {input}\n\nAnswer:",
  qasper:
    'You are given a scientific article and a question. Answer the question as concisely as you can, using a single phrase or sentence if possible. If the question cannot be answered based on the information in the article, write "unanswerable". If the question is a yes/no question, answer "yes", "no", or "unanswerable". Do not provide any explanation.\n\nArticle: {context}\n\n Answer the question based on the above article as concisely as you can, using a single phrase or sentence if possible. If the question cannot be answered based on the information in the article, write "unanswerable". If the question is a yes/no question, answer "yes", "no", or "unanswerable". Do not provide any explanation.\n\nQuestion: {input}\n\nAnswer:',
  multifieldqa_en:
    "Read the following text and answer briefly.\n\n{context}\n\nNow, answer the following question based on the above text, only give me the answer and do not output any other words.\n\nQuestion: {input}\nAnswer:",
  hotpotqa:
    "Answer the question based on the given passages. Only give me the answer and do not output any other words.\n\nThe following are given passages.\n{context}\n\nAnswer the question based on the given passages. Only give me the answer and do not output any other words.\n\nQuestion: {input}\nAnswer:",
  "2wikimqa":
    "Answer the question based on the given passages. Only give me the answer and do not output any other words.\n\nThe following are given passages.\n{context}\n\nAnswer the question based on the given passages. Only give me the answer and do not output any other words.\n\nQuestion: {input}\nAnswer:",
  musique:
    "Answer the question based on the given passages. Only give me the answer and do not output any other words.\n\nThe following are given passages.\n{context}\n\nAnswer the question based on the given passages. Only give me the answer and do not output any other words.\n\nQuestion: {input}\nAnswer:",
  gov_report:
    "You are given a report by a government agency. Write a one-page summary of the report.\n\nReport:\n{context}\n\nNow, write a one-page summary of the report.\n\nSummary:",
  qmsum:
    "You are given a meeting transcript and a query containing a question or instruction. Answer the query in one or more sentences.\n\nTranscript:\n{context}\n\nNow, answer the query based on the above meeting transcript in one or more sentences.\n\nQuery: {input}\nAnswer:",
  multi_news:
    "You are given several news passages. Write a one-page summary of all news. \n\nNews:\n{context}\n\nNow, write a one-page summary of all the news.\n\nSummary:",
  trec:
    "Please determine the type of the question below. Here are some examples of questions.\n\n{context}\n{input}",
  triviaqa:
    "Answer the question based on the given passage. Only give me the answer and do not output any other words. The following are some examples.\n\n{context}\n\n{input}",
  samsum:
    "Summarize the dialogue into a few short sentences. The following are some examples.\n\n{context}\n\n{input}",
  passage_count:
    "There are some paragraphs below sourced from Wikipedia. Some of them may be duplicates. Please carefully read these paragraphs and determine how many unique paragraphs there are after removing duplicates. In other words, how many non-repeating paragraphs are there in total?\n\n{context}\n\nPlease enter the final count of unique paragraphs after removing duplicates. The output format should only contain the number, such as 1, 2, 3, and so on.\n\nThe final answer is: ",
  passage_retrieval_en:
    'Here are 30 paragraphs from Wikipedia, along with an abstract. Please determine which paragraph the abstract is from.\n\n{context}\n\nThe following is an abstract.\n\n{input}\n\nPlease enter the number of the paragraph that the abstract is from. The answer format must be like "Paragraph 1", "Paragraph 2", etc.\n\nThe answer is: ',
  lcc: "Please complete the code given below. \n{context}Next line of code:\n",
  "repobench-p": "Please complete the code given below. \n{context}{input}Next line of code:\n",
};

/** LongBench `dataset2maxlen.json`, English tasks. */
export const LONGBENCH_MAX_NEW_TOKENS: Readonly<Record<string, number>> = {
  narrativeqa: 128,
  qasper: 128,
  multifieldqa_en: 64,
  hotpotqa: 32,
  "2wikimqa": 32,
  musique: 32,
  gov_report: 512,
  qmsum: 512,
  multi_news: 512,
  trec: 64,
  triviaqa: 32,
  samsum: 128,
  passage_count: 32,
  passage_retrieval_en: 32,
  lcc: 64,
  "repobench-p": 64,
};

const NO_CHAT_TEMPLATE = new Set(["trec", "triviaqa", "samsum", "lsht", "lcc", "repobench-p"]);

/** Options of {@linkcode loadLongbench}. */
export interface LongbenchOptions {
  /** Dataset name (default: the rows' `dataset` field, else the file name less "_e"). */
  dataset?: string;
  /** Task name on the samples (default "longbench_{dataset}"). */
  task?: string;
  /** Keep the first `limit` samples. */
  limit?: number;
  /** Cut prompts longer than a model's budget in the middle, as `pred.py` does. */
  truncation?: LongbenchTruncation;
}

/** LongBench's middle cut of an over-long prompt, in one model's tokens. */
export interface LongbenchTruncation {
  /** Tokens a prompt may hold: the model's `max_length` in LongBench's `model2maxlen.json`. */
  maxLength: number;
  /** The tokenizer of the model under test: the prompt is measured, cut and decoded in it. */
  tokenizer: Pick<TextTokenizer, "encode" | "decode">;
}

/** A LongBench prompt in the three parts of a sample. */
interface PromptParts {
  instruction: string;
  context: string;
  /** The template's text after the context, `{input}` filled in, separator included. */
  query: string;
}

/** What {@linkcode middleCut} made of a sample's context. */
interface CutContext {
  context: string;
  /** Absent when the prompt fits and the context is left whole. */
  truncated?: { promptTokens: number; keptTokens: number };
}

/**
 * `pred.py`'s cut: when `instruction + context + query` is longer than `maxLength` tokens, the
 * context that joins the decoded first and last halves. `where` names the sample in errors.
 */
function middleCut(parts: PromptParts, truncation: LongbenchTruncation, where: string): CutContext {
  const { maxLength, tokenizer } = truncation;
  // pred.py: tokenizer(prompt, truncation=False).input_ids, so BOS counts where the model adds it.
  const ids = tokenizer.encode(parts.instruction + parts.context + parts.query);
  if (ids.length <= maxLength) return { context: parts.context };
  const half = Math.floor(maxLength / 2);
  const decode = (part: number[]) => tokenizer.decode(part, { skipSpecialTokens: true });
  const head = decode(ids.slice(0, half));
  const tail = decode(ids.slice(ids.length - half));
  // The instruction and query as decoding renders them (clean-up, a dropped leading space).
  const instructionIds = tokenizer.encode(parts.instruction);
  const queryIds = tokenizer.encode(parts.query, { addSpecialTokens: false });
  const instruction = decode(instructionIds);
  const query = decode(queryIds);
  const kept = `maxLength ${maxLength} keeps the first and last ${half} of its ${ids.length} ` +
    "tokens";
  if (!head.startsWith(instruction)) {
    throw new InputError(
      `${where}: ${kept}, and the first ${half} end inside its instruction ` +
        `(${instructionIds.length} tokens); expected maxLength / 2 to hold the instruction ` +
        "whole, so that the cut falls in the context",
    );
  }
  if (!tail.endsWith(query)) {
    throw new InputError(
      `${where}: ${kept}, and the last ${half} begin inside its query ` +
        `(${queryIds.length} tokens); expected maxLength / 2 to hold the query whole, so ` +
        "that the cut falls in the context",
    );
  }
  return {
    context: head.slice(instruction.length) + tail.slice(0, tail.length - query.length),
    truncated: { promptTokens: ids.length, keptTokens: 2 * half },
  };
}

function datasetOf(name: string, where: string): string {
  const base = name.endsWith("_e") ? name.slice(0, -2) : name;
  if (LONGBENCH_PROMPTS[base] === undefined) {
    throw new InputError(
      `${where}: LongBench dataset "${name}" is not a supported English task; expected one of ${
        Object.keys(LONGBENCH_PROMPTS).join(", ")
      }`,
    );
  }
  return base;
}

/**
 * Load one LongBench dataset file.
 *
 * @example
 * ```ts
 * const samples = await loadLongbench("data/longbench/hotpotqa.jsonl");
 * samples[0].queries[0].metric; // "qa_f1_score"
 * ```
 */
export async function loadLongbench(
  path: string,
  options: LongbenchOptions = {},
): Promise<Sample[]> {
  const rows = await readJsonl(path);
  const samples: Sample[] = [];
  for (const row of rows) {
    if (options.limit !== undefined && samples.length >= options.limit) break;
    const rowDataset = optionalField(row, "dataset");
    const name = options.dataset ?? (typeof rowDataset === "string" ? rowDataset : fileStem(path));
    const dataset = datasetOf(name, row.where);
    const task = options.task ?? `longbench_${dataset}`;
    const template = LONGBENCH_PROMPTS[dataset];
    const [before, after] = template.split("{context}");
    const input = stringField(row, "input");
    const answers = stringListField(row, "answers");
    if (answers.length === 0) throw new InputError(`${row.where}: field "answers" is empty`);
    // A function, so "$'" or "$&" in code stays as written (a string is a pattern).
    const filled = after.replaceAll("{input}", () => input);
    const query = filled.replace(/^\s+/, "");
    const meta: Record<string, unknown> = {
      separator: filled.slice(0, filled.length - query.length),
      chatTemplate: !NO_CHAT_TEMPLATE.has(dataset),
    };
    if (LONGBENCH_FIRST_LINE.has(dataset)) meta.firstLine = true;
    if (dataset === "samsum") meta.stopAtNewline = true;
    if (LONGBENCH_METRICS[dataset] === "classification_score") {
      meta.allClasses = stringListField(row, "all_classes");
    }
    const id = `${task}/${samples.length}`;
    const parts = { instruction: before, context: stringField(row, "context"), query: filled };
    const cut = options.truncation === undefined
      ? { context: parts.context }
      : middleCut(parts, options.truncation, `${row.where}: LongBench ${dataset} sample ${id}`);
    samples.push({
      id,
      task,
      instruction: before,
      context: cut.context,
      queries: [{
        prompt: query,
        // The template's query ends with its own cue ("Answer:", "The final answer is: ",
        // "Next line of code:\n"): a plain-format prompt ends there, with the template's trailing
        // whitespace, as pred.py's does.
        answerPrefix: /\s*$/.exec(query)![0],
        answers,
        metric: LONGBENCH_METRICS[dataset],
        maxNewTokens: LONGBENCH_MAX_NEW_TOKENS[dataset],
        ...(dataset === "samsum" ? { stopStrings: ["\n"] } : {}),
        meta,
      }],
      // pred.py runs the few-shot and code datasets without the chat template.
      ...(NO_CHAT_TEMPLATE.has(dataset) ? { prompt: { format: "plain" as const } } : {}),
      meta: {
        source: "longbench",
        dataset,
        row: row.where,
        id: optionalField(row, "_id"),
        length: optionalField(row, "length"),
        language: optionalField(row, "language"),
        ...(cut.truncated === undefined ? {} : { truncated: cut.truncated }),
      },
    });
  }
  return samples;
}
