/**
 * Question answering among distractor documents, after RULER's `qa_1` (SQuAD) and `qa_2`
 * (HotpotQA). No QA corpus is available offline, so the documents are generated: short
 * biographies of made-up people and histories of made-up organisations. Every name is unique
 * within a sample, so a question about a named person is answerable from exactly one document
 * (`qa_1`), or from exactly two documents linked by a name (`qa_2`, two hops).
 *
 * @module
 */

import { z } from "zod";
import type { Query } from "../types.ts";
import { madeUpWord, proseSentence } from "../haystack.ts";
import {
  chooseDepths,
  defineGenerator,
  type GeneratorAdapter,
  LENGTH_OPTION_SHAPE,
  type LengthOptions,
} from "./common.ts";
import type { Rng } from "./rng.ts";
import { joinSentences, ProseHaystack } from "../haystack.ts";

/** RULER's output budget for QA. */
export const QA_MAX_NEW_TOKENS = 32;

const PROFESSIONS = [
  "cartographer",
  "glassblower",
  "astronomer",
  "bookbinder",
  "beekeeper",
  "botanist",
  "clockmaker",
  "engraver",
  "ferryman",
  "lighthouse keeper",
  "locksmith",
  "mapmaker",
  "navigator",
  "organ builder",
  "perfumer",
  "printer",
  "saddler",
  "shipwright",
  "stonemason",
  "surveyor",
  "tailor",
  "translator",
  "violin maker",
  "weaver",
  "apothecary",
  "architect",
  "blacksmith",
  "chemist",
  "composer",
  "geologist",
  "historian",
  "librarian",
  "mathematician",
  "physician",
  "sculptor",
  "teacher",
];
const INSTRUMENTS = [
  "cello",
  "violin",
  "harp",
  "flute",
  "oboe",
  "clarinet",
  "bassoon",
  "trumpet",
  "accordion",
  "mandolin",
  "lute",
  "harpsichord",
  "piano",
  "viola",
  "double bass",
  "bagpipes",
  "dulcimer",
  "zither",
  "trombone",
  "french horn",
];
const TOWN_SUFFIXES = [
  "brook",
  "mere",
  "ford",
  "ham",
  "wick",
  "stead",
  "holm",
  "bury",
  "dale",
  "port",
  "field",
  "moor",
];
const ORG_KINDS = [
  "Guild",
  "Society",
  "Company",
  "Academy",
  "Press",
  "Workshop",
  "Observatory",
  "Trading House",
  "Museum",
  "Choir",
  "Botanical Garden",
  "Lending Library",
];

function capital(word: string): string {
  return word.charAt(0).toUpperCase() + word.slice(1);
}

/** Unique made-up names for one sample. */
class NameBook {
  #used = new Set<string>();
  #rng: Rng;
  constructor(rng: Rng) {
    this.#rng = rng;
  }
  #fresh(make: () => string): string {
    for (;;) {
      const name = make();
      const key = name.toLowerCase();
      if (!this.#used.has(key)) {
        this.#used.add(key);
        return name;
      }
    }
  }
  person(): string {
    return this.#fresh(() =>
      `${capital(madeUpWord(this.#rng, 2))} ${capital(madeUpWord(this.#rng, this.#rng.int(2, 3)))}`
    );
  }
  town(): string {
    return this.#fresh(() =>
      capital(madeUpWord(this.#rng, this.#rng.int(1, 2))) + this.#rng.pick(TOWN_SUFFIXES)
    );
  }
  org(): string {
    return this.#fresh(() =>
      `the ${capital(madeUpWord(this.#rng, 2))} ${this.#rng.pick(ORG_KINDS)}`
    );
  }
}

/** The facts of one made-up person. */
export interface Person {
  name: string;
  she: boolean;
  profession: string;
  town: string;
  org: string;
  year: number;
  instrument: string;
}

function makePerson(rng: Rng, names: NameBook): Person {
  return {
    name: names.person(),
    she: rng.chance(0.5),
    profession: rng.pick(PROFESSIONS),
    town: names.town(),
    org: names.org(),
    year: rng.int(1700, 1950),
    instrument: rng.pick(INSTRUMENTS),
  };
}

function article(word: string): string {
  return /^[aeiou]/.test(word) ? "an" : "a";
}

/** A short biography; with `withOrg` false it leaves out the organisation (qa_2's person documents). */
function biography(rng: Rng, p: Person, withOrg: boolean): string {
  const pro = p.she ? "she" : "he";
  const pos = p.she ? "her" : "his";
  const facts: string[] = [
    rng.chance(0.5)
      ? `${p.name} was ${article(p.profession)} ${p.profession}.`
      : `${p.name} worked as ${article(p.profession)} ${p.profession} for most of ${pos} life.`,
    rng.chance(0.5)
      ? `${capital(pro)} was born in the town of ${p.town}.`
      : `${capital(pos)} hometown was ${p.town}.`,
    rng.chance(0.5)
      ? `In ${pos} spare time ${pro} played the ${p.instrument}.`
      : `${capital(pro)} was also known for playing the ${p.instrument}.`,
  ];
  if (withOrg) {
    facts.push(
      rng.chance(0.5)
        ? `In ${p.year}, ${pro} founded ${p.org}.`
        : `${capital(pro)} founded ${p.org} in ${p.year}.`,
    );
  }
  // The name comes first; the other facts and a line of prose follow in any order.
  const [first, ...rest] = facts;
  const body = rng.shuffle([...rest, proseSentence(rng)]);
  return [first, ...body].join(" ");
}

/** An organisation's history naming its founder (qa_2's bridge documents). */
function history(rng: Rng, p: Person): string {
  const org = capital(p.org);
  return rng.chance(0.5)
    ? `${org} was founded in ${p.year} by ${p.name}. ${proseSentence(rng)}`
    : `${p.name} founded ${p.org} in ${p.year}. ${proseSentence(rng)}`;
}

type Fact = "profession" | "town" | "org" | "year" | "instrument";

function singleHop(rng: Rng, p: Person): { question: string; answers: string[]; fact: Fact } {
  const fact = rng.pick<Fact>(["profession", "town", "org", "year", "instrument"]);
  switch (fact) {
    case "profession":
      return { fact, question: `What was the profession of ${p.name}?`, answers: [p.profession] };
    case "town":
      return { fact, question: `In which town was ${p.name} born?`, answers: [p.town] };
    case "org":
      return {
        fact,
        question: `Which organization did ${p.name} found?`,
        answers: [p.org.replace(/^the /, "")],
      };
    case "year":
      return {
        fact,
        question: `In which year did ${p.name} found ${p.org}?`,
        answers: [String(p.year)],
      };
    case "instrument":
      return { fact, question: `Which instrument did ${p.name} play?`, answers: [p.instrument] };
  }
}

function twoHop(rng: Rng, p: Person): { question: string; answers: string[]; fact: Fact } {
  const fact = rng.pick<Fact>(["profession", "town", "instrument"]);
  switch (fact) {
    case "profession":
      return {
        fact,
        question: `What was the profession of the founder of ${p.org}?`,
        answers: [p.profession],
      };
    case "town":
      return {
        fact,
        question: `In which town was the founder of ${p.org} born?`,
        answers: [p.town],
      };
    default:
      return {
        fact,
        question: `Which instrument did the founder of ${p.org} play?`,
        answers: [p.instrument],
      };
  }
}

/** Options of `qa_1` and `qa_2`. */
export interface QaOptions extends LengthOptions {
  /** Questions per sample, each about a different person (answered from the same context). */
  questions: number;
}

const QA_INSTRUCTION =
  "Answer the question based on the given documents. Only give me the answer and do not output any other words.\n\nThe following are given documents.\n\n";
const QA_REMINDER =
  "Answer the question based on the given documents. Only give me the answer and do not output any other words.\n\n";

function qaGenerator(name: "qa_1" | "qa_2"): GeneratorAdapter<QaOptions> {
  const hops = name === "qa_1" ? 1 : 2;
  return defineGenerator<QaOptions>({
    name,
    suite: "long-context",
    description: hops === 1
      ? "RULER-style QA: a question about one made-up person, answerable from exactly one of many documents"
      : "RULER-style two-hop QA (HotpotQA-like): a founder's document reached through an organisation's history",
    version: 1,
    options: z.strictObject({
      ...LENGTH_OPTION_SHAPE,
      questions: z.number().int().min(1).max(20).default(1),
    }),
    plan({ rng, options }) {
      const names = new NameBook(rng.fork("names"));
      const golds = Array.from({ length: options.questions }, () => makePerson(rng, names));
      const textRng = rng.fork("text");
      const goldDocs: string[] = [];
      const queries: Query[] = [];
      const facts: Fact[] = [];
      for (const p of golds) {
        const q = hops === 1 ? singleHop(rng, p) : twoHop(rng, p);
        facts.push(q.fact);
        queries.push({
          prompt: `${QA_REMINDER}Question: ${q.question}`,
          answerPrefix: "Answer:",
          answers: q.answers,
          metric: "string_match_part",
          maxNewTokens: QA_MAX_NEW_TOKENS,
        });
        if (hops === 1) goldDocs.push(biography(textRng, p, true));
        else goldDocs.push(history(textRng, p), biography(textRng, p, false));
      }
      const depths = chooseDepths(rng.fork("depths"), options.depth, goldDocs.length);
      const distractorRng = rng.fork("distractors");
      const distractors: string[] = [];
      const filler = new ProseHaystack(rng.fork("filler").seed);
      return {
        instruction: QA_INSTRUCTION,
        queries,
        meta: { depths, facts },
        minCoarse: 0,
        build(coarse: number, fine: number) {
          while (distractors.length < coarse) {
            const p = makePerson(distractorRng, names);
            // qa_2's distractors mix histories and biographies, as its golds do.
            distractors.push(
              hops === 2 && distractorRng.chance(0.5)
                ? history(distractorRng, p)
                : biography(distractorRng, p, hops === 1),
            );
          }
          const docs = [...distractors.slice(0, coarse)];
          // Golds go in from the deepest, so earlier positions stay where they were computed.
          const at = goldDocs.map((text, i) => ({
            text,
            position: Math.round(depths[i] * docs.length),
            i,
          }))
            .sort((a, b) => b.position - a.position || b.i - a.i);
          for (const g of at) docs.splice(g.position, 0, g.text);
          // Fine units: prose words at the end of the last document (no new header to pay for).
          if (fine > 0) docs[docs.length - 1] += " " + joinSentences(filler.sentences(fine));
          return { context: docs.map((d, i) => `Document ${i + 1}:\n${d}`).join("\n\n") };
        },
      };
    },
  });
}

/** `qa_1`: single-hop questions among distractor documents. */
export const qa1Generator: GeneratorAdapter<QaOptions> = qaGenerator("qa_1");
/** `qa_2`: two-hop questions among distractor documents. */
export const qa2Generator: GeneratorAdapter<QaOptions> = qaGenerator("qa_2");
