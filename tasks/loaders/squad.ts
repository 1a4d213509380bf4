/**
 * SQuAD v1.1 as FastKVzip uses it (spec §6.1 `squad`): questions grouped by identical context,
 * in order of first appearance; each question asked as "Q: {question}" and graded with
 * `include_score`, 256 new tokens.
 *
 * Reads the published `train-v1.1.json`/`dev-v1.1.json` (`{"data": [{"title", "paragraphs":
 * [{"context", "qas": [{"id", "question", "answers": [{"text", "answer_start"}]}]}]}]}`) and
 * the Hugging Face rows of `rajpurkar/squad` (JSONL or Parquet with `id`, `title`, `context`,
 * `question`, `answers: {text: [...], answer_start: [...]}`). Every answer text of a question
 * is kept (dev has several); the metric takes the best. FastKVzip stops after 101 contexts of
 * the train split and evaluates 100: pass `limit: 100`.
 *
 * @module
 */

import { InputError } from "../../errors.ts";
import type { Query, Sample } from "../types.ts";
import {
  formatOf,
  listField,
  readJsonl,
  readParquet,
  type Row,
  stringField,
  stringListField,
  textField,
} from "./rows.ts";

/** Options of {@linkcode loadSquad}. */
export interface SquadOptions {
  /** Task name on the samples (default "squad"). */
  task?: string;
  /** Keep the first `limit` contexts. */
  limit?: number;
}

interface Question {
  id: string;
  question: string;
  answers: string[];
}

/** The SQuAD questions of a v1.1 JSON file, in file order, with their contexts. */
async function squadJsonQuestions(path: string): Promise<[string, Question, string][]> {
  let doc: unknown;
  try {
    doc = JSON.parse(await Deno.readTextFile(path));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) throw new InputError(`${path}: no such file`);
    throw new InputError(`${path}: malformed JSON (${(error as Error).message})`);
  }
  const data = (doc as { data?: unknown })?.data;
  if (!Array.isArray(data)) {
    throw new InputError(`${path}: expected SQuAD v1.1 JSON with a "data" list of articles`);
  }
  const out: [string, Question, string][] = [];
  data.forEach((article, a) => {
    const articleRow: Row = { where: `${path}: data[${a}]`, fields: article ?? {} };
    listField(articleRow, "paragraphs").forEach((paragraph, p) => {
      const paraRow: Row = {
        where: `${path}: data[${a}].paragraphs[${p}]`,
        fields: (paragraph ?? {}) as Record<string, unknown>,
      };
      const context = stringField(paraRow, "context");
      listField(paraRow, "qas").forEach((qa, q) => {
        const qaRow: Row = {
          where: `${paraRow.where}.qas[${q}]`,
          fields: qa as Record<string, unknown>,
        };
        const answers = listField(qaRow, "answers").map((answer, k) =>
          stringField({
            where: `${qaRow.where}.answers[${k}]`,
            fields: answer as Record<string, unknown>,
          }, "text")
        );
        out.push([context, {
          id: textField(qaRow, "id"),
          question: stringField(qaRow, "question"),
          answers,
        }, qaRow.where]);
      });
    });
  });
  return out;
}

function hfQuestion(row: Row): [string, Question, string] {
  const answers = row.fields.answers as Record<string, unknown> | undefined;
  const texts = stringListField(
    { where: row.where, fields: { "answers.text": answers?.text } },
    "answers.text",
  );
  return [
    stringField(row, "context"),
    { id: textField(row, "id"), question: stringField(row, "question"), answers: texts },
    row.where,
  ];
}

/**
 * Load SQuAD as samples of one context and its questions.
 *
 * @example
 * ```ts
 * const samples = await loadSquad("data/squad/train-v1.1.json", { limit: 100 });
 * ```
 */
export async function loadSquad(path: string, options: SquadOptions = {}): Promise<Sample[]> {
  const task = options.task ?? "squad";
  const format = formatOf(path);
  const questions = format === "json"
    ? await squadJsonQuestions(path)
    : (format === "jsonl" ? await readJsonl(path) : await readParquet(path)).map(hfQuestion);
  const byContext = new Map<string, Sample>();
  for (const [context, q, where] of questions) {
    if (q.answers.length === 0) throw new InputError(`${where}: question has no answer text`);
    let sample = byContext.get(context);
    if (sample === undefined) {
      if (options.limit !== undefined && byContext.size >= options.limit) break;
      sample = {
        id: `${task}/${byContext.size}`,
        task,
        context,
        queries: [],
        meta: { source: "squad" },
      };
      byContext.set(context, sample);
    }
    const query: Query = {
      prompt: `Q: ${q.question}`,
      answers: q.answers,
      metric: "include_score",
      maxNewTokens: 256,
      meta: { id: q.id },
    };
    sample.queries.push(query);
  }
  return [...byContext.values()];
}
