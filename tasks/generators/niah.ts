/**
 * Needle in a haystack, after RULER's `niah` generator: needles "One of the special magic
 * {numbers} for {key} is: {value}." hidden in a haystack (prose, RULER's repeated noise, or a
 * haystack of distractor needles), with one or more keys, values and queried keys. The eight
 * RULER configurations are registered as `niah_single_1` … `niah_multiquery`.
 *
 * @module
 */

import { z } from "zod";
import type { Query } from "../types.ts";
import {
  ADJECTIVES,
  EssayHaystack,
  type HaystackSentence,
  insertAtDepths,
  joinSentences,
  madeUpWord,
  NoiseHaystack,
  NOUNS,
  ProseHaystack,
} from "../haystack.ts";
import {
  chooseDepths,
  defineGenerator,
  type GeneratorAdapter,
  LENGTH_OPTION_SHAPE,
  type LengthOptions,
  type Plan,
} from "./common.ts";
import type { Rng } from "./rng.ts";

/** Kinds of needle keys and values, as RULER names them. */
export type NeedleKind = "words" | "numbers" | "uuids";

/** One NIAH configuration. */
export interface NiahConfig {
  haystack: "prose" | "noise" | "needle";
  keyKind: NeedleKind;
  valueKind: NeedleKind;
  /** Keys inserted (the unqueried ones are distractors). */
  keys: number;
  /** Values per key (all must be returned). */
  values: number;
  /** Keys asked about at once. */
  queried: number;
}

/** RULER's eight NIAH tasks (scripts/synthetic.yaml), with our prose for its essays. */
export const NIAH_TASKS: Readonly<Record<string, NiahConfig>> = {
  niah_single_1: {
    haystack: "noise",
    keyKind: "words",
    valueKind: "numbers",
    keys: 1,
    values: 1,
    queried: 1,
  },
  niah_single_2: {
    haystack: "prose",
    keyKind: "words",
    valueKind: "numbers",
    keys: 1,
    values: 1,
    queried: 1,
  },
  niah_single_3: {
    haystack: "prose",
    keyKind: "words",
    valueKind: "uuids",
    keys: 1,
    values: 1,
    queried: 1,
  },
  niah_multikey_1: {
    haystack: "prose",
    keyKind: "words",
    valueKind: "numbers",
    keys: 4,
    values: 1,
    queried: 1,
  },
  niah_multikey_2: {
    haystack: "needle",
    keyKind: "words",
    valueKind: "numbers",
    keys: 1,
    values: 1,
    queried: 1,
  },
  niah_multikey_3: {
    haystack: "needle",
    keyKind: "uuids",
    valueKind: "uuids",
    keys: 1,
    values: 1,
    queried: 1,
  },
  niah_multivalue: {
    haystack: "prose",
    keyKind: "words",
    valueKind: "numbers",
    keys: 1,
    values: 4,
    queried: 1,
  },
  niah_multiquery: {
    haystack: "prose",
    keyKind: "words",
    valueKind: "numbers",
    keys: 4,
    values: 1,
    queried: 4,
  },
};

/** RULER's output budget for NIAH. */
export const NIAH_MAX_NEW_TOKENS = 128;

const TEMPLATE =
  "Some special magic {type_needle_v} are hidden within the following text. Make sure to memorize it. I will quiz you about the {type_needle_v} afterwards.\n";
const QUESTION =
  "What are all the special magic {type_needle_v} for {query} mentioned in the provided text?";
const ANSWER_PREFIX =
  "The special magic {type_needle_v} for {query} mentioned in the provided text are";
const NEEDLE = "One of the special magic {type_needle_v} for {key} is: {value}.";

/** RULER's rewording when one value is asked for. */
function singular(text: string): string {
  return text.replace("Some", "A").replace("are all", "is").replace("are", "is").replace(
    "answers",
    "answer",
  );
}

/** A random needle key or value of `kind` (RULER: 7-digit numbers, adjective-noun words, UUIDs). */
export function needleToken(rng: Rng, kind: NeedleKind): string {
  switch (kind) {
    case "numbers":
      return String(rng.int(1_000_000, 9_999_999));
    case "uuids":
      return rng.uuid();
    case "words":
      return rng.chance(0.9)
        ? `${rng.pick(ADJECTIVES)}-${rng.pick(NOUNS)}`
        : `${rng.pick(ADJECTIVES)}-${madeUpWord(rng, 2)}`;
  }
}

/** Draw tokens of `kind` not in `used` (which is updated). */
function freshToken(rng: Rng, kind: NeedleKind, used: Set<string>): string {
  for (let attempt = 0; attempt < 1000; attempt++) {
    const token = needleToken(rng, kind);
    if (!used.has(token)) {
      used.add(token);
      return token;
    }
  }
  // The word space is nearly exhausted: fall back to made-up words, which never run out.
  for (;;) {
    const token = `${rng.pick(ADJECTIVES)}-${madeUpWord(rng, 3)}`;
    if (!used.has(token)) {
      used.add(token);
      return token;
    }
  }
}

function format(template: string, fields: Record<string, string>): string {
  return template.replace(/\{(\w+)\}/g, (_, name: string) => fields[name]);
}

/** Plan one NIAH sample. */
export function planNiah(config: NiahConfig, rng: Rng, options: NiahOptions): Plan {
  const typeV = config.valueKind;
  const used = new Set<string>();
  const needleRng = rng.fork("needles");
  const keys: string[] = [];
  const values: string[][] = [];
  const needles: string[] = [];
  for (let k = 0; k < config.keys; k++) {
    keys.push(freshToken(needleRng, config.keyKind, used));
    const vs: string[] = [];
    for (let v = 0; v < config.values; v++) {
      vs.push(freshToken(needleRng, config.valueKind, used));
      needles.push(format(NEEDLE, { type_needle_v: typeV, key: keys[k], value: vs[v] }));
    }
    values.push(vs);
  }
  const order = rng.fork("order");
  const shuffled = order.shuffle(needles);
  const queriedIdx = order.sample(keys.map((_, i) => i), config.queried);
  const queriedKeys = queriedIdx.map((i) => keys[i]);
  const answers = queriedIdx.flatMap((i) => values[i]);
  const query = queriedKeys.length > 1
    ? queriedKeys.slice(0, -1).join(", ") + ", and " + queriedKeys[queriedKeys.length - 1]
    : queriedKeys[0];

  const one = config.queried * config.values === 1;
  const typeShown = one ? typeV.slice(0, -1) : typeV;
  const fix = (t: string) => (one ? singular(t) : t);
  const instruction = format(fix(TEMPLATE), { type_needle_v: typeShown });
  const q: Query = {
    prompt: format(fix(QUESTION), { type_needle_v: typeShown, query }),
    answerPrefix: format(fix(ANSWER_PREFIX), { type_needle_v: typeShown, query }),
    answers,
    metric: "string_match_all",
    maxNewTokens: NIAH_MAX_NEW_TOKENS,
  };
  const depths = chooseDepths(rng.fork("depths"), options.depth, shuffled.length);
  const insertions = shuffled.map((text, i) => ({ text, depth: depths[i] }));

  const meta = { depths, keys: queriedKeys, haystack: config.haystack };
  if (config.haystack === "needle") {
    const distractorRng = rng.fork("distractors");
    const distractors: string[] = [];
    const noise = new NoiseHaystack();
    return {
      instruction,
      queries: [q],
      meta,
      minCoarse: 0,
      build(coarse: number, fine: number) {
        while (distractors.length < coarse) {
          distractors.push(format(NEEDLE, {
            type_needle_v: typeV,
            key: freshToken(distractorRng, config.keyKind, used),
            value: freshToken(distractorRng, config.valueKind, used),
          }));
        }
        const lines: HaystackSentence[] = distractors.slice(0, coarse).map((text) => ({
          text,
          words: 0,
          paragraphStart: false,
        }));
        const withNeedles = insertAtDepths(lines, insertions).map((s) => s.text);
        const filler = noise.sentenceList(fine).map((s) => s.text).join(" ");
        return { context: withNeedles.join("\n") + (fine > 0 ? "\n" + filler : "") };
      },
    };
  }
  const haystack = config.haystack === "noise"
    ? new NoiseHaystack()
    : options.haystackFile !== undefined
    ? EssayHaystack.fromFile(options.haystackFile)
    : new ProseHaystack(rng.fork("haystack").seed);
  return {
    instruction,
    queries: [q],
    meta,
    minCoarse: 0,
    fine: false,
    build(coarse: number) {
      return { context: joinSentences(insertAtDepths(haystack.sentences(coarse), insertions)) };
    },
  };
}

/**
 * Options of the NIAH generators; the prose-haystack tasks also take `haystackFile`: RULER's
 * essays (or any text) instead of the generated prose.
 */
export type NiahOptions = LengthOptions & { haystackFile?: string };

/** The `haystackFile` option of the prose-haystack tasks. */
const HAYSTACK_FILE = z.string().min(1).optional().describe(
  "text for the haystack instead of generated prose: a .txt file, RULER's PaulGrahamEssays.json " +
    '({"text": …}) or JSON lines of {"text": …}; its first words, repeated when too short',
);

/** The adapter of one NIAH configuration. */
export function niahGenerator(name: string, config: NiahConfig): GeneratorAdapter<NiahOptions> {
  return defineGenerator<NiahOptions>({
    name,
    suite: "long-context",
    description:
      `RULER needle in a haystack: ${config.haystack} haystack, ${config.keyKind} keys → ${config.valueKind}, ` +
      `${config.keys} key(s), ${config.values} value(s) each, ${config.queried} queried`,
    version: 1,
    options: config.haystack === "prose"
      ? z.strictObject({ ...LENGTH_OPTION_SHAPE, haystackFile: HAYSTACK_FILE })
      : z.strictObject(LENGTH_OPTION_SHAPE),
    ...(config.haystack === "prose" ? { fileOptions: ["haystackFile"] } : {}),
    plan: ({ rng, options }) => planNiah(config, rng, options),
  });
}

/** All NIAH adapters. */
export function niahGenerators(): GeneratorAdapter<NiahOptions>[] {
  return Object.entries(NIAH_TASKS).map(([name, config]) => niahGenerator(name, config));
}
