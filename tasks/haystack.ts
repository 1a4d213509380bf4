/**
 * Seeded haystacks for the long-context generators. No essay corpus is available offline, so
 * "prose" is written by a small recursive template grammar over a varied vocabulary: past-tense
 * narrative sentences grouped into paragraphs. It holds no digits, hyphens, colons or quotes,
 * so needles (numbers, UUIDs, hyphenated keys, "VAR" lines) can never be matched by filler.
 * "noise" is RULER's repeated filler paragraph.
 *
 * Haystacks are measured in words (RULER's unit for essays): the first n words of a stream are
 * the same whatever n is, so a binary search on n grows the text monotonically.
 *
 * @module
 */

import { InputError } from "../errors.ts";
import { Rng } from "./generators/rng.ts";

/** One sentence of a haystack. */
export interface HaystackSentence {
  text: string;
  /** Whitespace-separated words in `text`. */
  words: number;
  /** Starts a new paragraph (joined with a blank line instead of a space). */
  paragraphStart: boolean;
}

/** Nouns (singular, lower case). */
export const NOUNS: readonly string[] = [
  "harbor",
  "lantern",
  "orchard",
  "river",
  "meadow",
  "village",
  "market",
  "bridge",
  "tower",
  "garden",
  "library",
  "kitchen",
  "window",
  "mountain",
  "valley",
  "forest",
  "island",
  "engine",
  "letter",
  "journal",
  "compass",
  "violin",
  "carpet",
  "mirror",
  "basket",
  "ladder",
  "wagon",
  "cottage",
  "chapel",
  "workshop",
  "canal",
  "station",
  "theater",
  "museum",
  "festival",
  "storm",
  "season",
  "morning",
  "evening",
  "winter",
  "summer",
  "harvest",
  "feather",
  "candle",
  "blanket",
  "shadow",
  "melody",
  "rumor",
  "promise",
  "question",
  "answer",
  "stranger",
  "sailor",
  "baker",
  "teacher",
  "painter",
  "gardener",
  "merchant",
  "traveler",
  "student",
  "captain",
  "shepherd",
  "weaver",
  "potter",
  "miller",
  "clockmaker",
  "fisherman",
  "neighbor",
  "cousin",
  "council",
  "crowd",
  "choir",
  "orchestra",
  "kettle",
  "teapot",
  "notebook",
  "map",
  "telescope",
  "lighthouse",
  "fountain",
  "courtyard",
  "staircase",
  "attic",
  "cellar",
  "barn",
  "stable",
  "pasture",
  "hill",
  "cliff",
  "shore",
  "tide",
  "cloud",
  "breeze",
  "frost",
  "meal",
  "recipe",
  "story",
  "legend",
  "song",
  "photograph",
  "painting",
  "statue",
  "ribbon",
  "button",
  "needle",
  "thread",
  "quilt",
  "umbrella",
  "bicycle",
  "ferry",
  "carriage",
  "anchor",
  "sail",
  "oar",
  "pebble",
  "acorn",
  "fern",
  "willow",
  "sparrow",
  "heron",
  "fox",
  "badger",
  "otter",
  "pony",
  "goat",
  "beehive",
  "honeycomb",
];

/** Adjectives (lower case). */
export const ADJECTIVES: readonly string[] = [
  "quiet",
  "bright",
  "ancient",
  "narrow",
  "gentle",
  "restless",
  "golden",
  "silver",
  "crooked",
  "patient",
  "curious",
  "distant",
  "hidden",
  "humble",
  "careful",
  "stubborn",
  "cheerful",
  "weary",
  "tender",
  "hollow",
  "crimson",
  "amber",
  "pale",
  "dusty",
  "fragrant",
  "frozen",
  "sunlit",
  "shadowy",
  "lively",
  "solemn",
  "modest",
  "proud",
  "clever",
  "sleepy",
  "brave",
  "fearless",
  "rusty",
  "polished",
  "tangled",
  "sturdy",
  "fragile",
  "generous",
  "nervous",
  "honest",
  "lonely",
  "busy",
  "idle",
  "faithful",
  "forgotten",
  "peculiar",
  "ordinary",
  "splendid",
  "gloomy",
  "merry",
  "misty",
  "windy",
  "muddy",
  "velvet",
  "woolen",
  "wooden",
  "stony",
  "mossy",
  "salty",
  "sweet",
  "bitter",
  "tiny",
  "enormous",
  "slender",
  "heavy",
  "swift",
  "slow",
  "careless",
  "graceful",
  "awkward",
  "silent",
  "noisy",
  "radiant",
  "faded",
  "wild",
  "tame",
];

/** Transitive verbs, past tense. */
const VERBS_T: readonly string[] = [
  "carried",
  "painted",
  "repaired",
  "visited",
  "remembered",
  "followed",
  "discovered",
  "admired",
  "borrowed",
  "guarded",
  "watched",
  "described",
  "questioned",
  "welcomed",
  "gathered",
  "measured",
  "polished",
  "opened",
  "closed",
  "cleaned",
  "mended",
  "noticed",
  "ignored",
  "praised",
  "studied",
  "crossed",
  "climbed",
  "explored",
  "sketched",
  "collected",
  "wrapped",
  "delivered",
  "traded",
  "sold",
  "bought",
  "found",
  "lost",
  "kept",
  "moved",
  "lifted",
  "pushed",
  "pulled",
  "hid",
  "shared",
  "built",
  "planted",
  "counted",
  "named",
  "greeted",
  "heard",
];

/** Intransitive verbs, past tense. */
const VERBS_I: readonly string[] = [
  "waited",
  "wandered",
  "laughed",
  "rested",
  "lingered",
  "whispered",
  "hesitated",
  "returned",
  "arrived",
  "vanished",
  "shivered",
  "glowed",
  "sang",
  "danced",
  "slept",
  "listened",
  "paused",
  "trembled",
  "smiled",
  "sighed",
  "drifted",
  "faded",
  "stayed",
  "worked",
  "hurried",
  "waved",
  "argued",
  "agreed",
  "travelled",
  "sat",
  "stood",
  "watched",
  "wondered",
  "grew",
  "changed",
];

/** Adverbs. */
const ADVERBS: readonly string[] = [
  "slowly",
  "quietly",
  "carefully",
  "eagerly",
  "gently",
  "suddenly",
  "patiently",
  "proudly",
  "softly",
  "happily",
  "sadly",
  "boldly",
  "calmly",
  "briskly",
  "gladly",
  "nervously",
  "warmly",
  "silently",
  "steadily",
  "politely",
  "loudly",
  "lazily",
  "barely",
  "gracefully",
  "kindly",
  "cheerfully",
  "anxiously",
  "curiously",
  "faithfully",
  "wisely",
];

/** Prepositions that take a noun phrase. */
const PREPOSITIONS: readonly string[] = [
  "near",
  "beside",
  "behind",
  "beyond",
  "under",
  "over",
  "across",
  "along",
  "around",
  "inside",
  "outside",
  "toward",
  "past",
  "through",
  "among",
  "against",
  "beneath",
  "above",
  "within",
  "without",
];

/** Sentence openers. */
const OPENERS: readonly string[] = [
  "Later that day",
  "In the morning",
  "By evening",
  "Long ago",
  "Without a word",
  "Before dawn",
  "After the rain",
  "Once again",
  "For a while",
  "In the end",
  "At first",
  "Now and then",
  "That winter",
  "During the festival",
  "Every spring",
  "Meanwhile",
  "Soon after",
  "Even so",
  "Somewhere far away",
  "Against all odds",
  "All the same",
  "In those years",
  "At the market",
  "On the hill",
  "Just before noon",
  "Under a pale sky",
  "Near the old bridge",
  "Quite suddenly",
];

/** People's names used in prose. */
const NAMES: readonly string[] = [
  "Marta",
  "Ilyas",
  "Beatrix",
  "Tomas",
  "Oona",
  "Casimir",
  "Leontine",
  "Rafael",
  "Sunniva",
  "Emeric",
  "Thandiwe",
  "Osric",
  "Perpetua",
  "Anselm",
  "Yara",
  "Dorian",
  "Wilhelmina",
  "Kofi",
  "Ingrid",
  "Matthias",
  "Noor",
  "Bartholomew",
  "Esme",
  "Lucian",
  "Greta",
  "Ambrose",
  "Soraya",
  "Florian",
  "Henrietta",
  "Jonas",
];

const CONJUNCTIONS: readonly string[] = ["and", "but", "so", "yet", "while"];
const SUBORDINATORS: readonly string[] = [
  "because",
  "after",
  "before",
  "although",
  "when",
  "until",
  "since",
  "as soon as",
  "even though",
];
const REACTIONS: readonly string[] = [
  "Nobody knew why",
  "Everyone agreed that",
  "It was said that",
  "Few remembered that",
  "The children claimed that",
  "Some believed that",
  "It seemed that",
  "Rumor had it that",
  "The letters confirmed that",
  "Few could explain why",
];

/**
 * The grammar: each symbol expands to one of its templates; `{symbol}` expands recursively and
 * lower-case symbols not in the table are word lists.
 */
const GRAMMAR: Record<string, readonly string[]> = {
  sentence: [
    "{np} {vp}.",
    "{opener}, {np} {vp}.",
    "{np} {vp} {pp}.",
    "{np} {vp}, {conj} {np} {vp}.",
    "{np} {vp} {sub} {np} {vp}.",
    "{reaction} {np} {vp}.",
    "There was {anp} {pp}.",
    "{np}, who {vp}, {vp} {pp}.",
    "{opener}, {np} {vp} {adverb}.",
    "It was {adj} {pp}, {conj} {np} {vp}.",
    "{name} {vt} {np} {pp}.",
    "{name} and {name} {vi} {pp}.",
  ],
  np: [
    "the {adj} {noun}",
    "the {noun}",
    "the {noun} of the {noun}",
    "{anp}",
    "{name}",
    "the {adj} {noun} {pp}",
    "every {noun}",
  ],
  anp: ["a {adj} {noun}", "an old {noun}", "a {noun}", "one {adj} {noun}"],
  vp: [
    "{vt} {np}",
    "{vi}",
    "{vi} {adverb}",
    "{vi} {pp}",
    "{adverb} {vt} {np}",
    "was {adj}",
    "seemed {adj} and {adj}",
    "{vt} {np} {adverb}",
    "never {vt} {np}",
  ],
  pp: ["{prep} {np}", "{prep} the {noun}", "{prep} the {adj} {noun}"],
};

const WORD_LISTS: Record<string, readonly string[]> = {
  noun: NOUNS,
  adj: ADJECTIVES,
  vt: VERBS_T,
  vi: VERBS_I,
  adverb: ADVERBS,
  prep: PREPOSITIONS,
  opener: OPENERS,
  name: NAMES,
  conj: CONJUNCTIONS,
  sub: SUBORDINATORS,
  reaction: REACTIONS,
};

/** Deeper noun phrases become plain ones, so sentences stay readable. */
const MAX_DEPTH = 3;

function expand(symbol: string, rng: Rng, depth: number): string {
  const list = WORD_LISTS[symbol];
  if (list !== undefined) return rng.pick(list);
  const options = GRAMMAR[symbol];
  if (options === undefined) throw new Error(`haystack grammar: unknown symbol {${symbol}}`);
  const template = depth >= MAX_DEPTH && symbol !== "sentence" ? options[0] : rng.pick(options);
  return template.replace(/\{(\w+)\}/g, (_, name: string) => {
    if (depth >= MAX_DEPTH && (name === "np" || name === "pp")) {
      return name === "np"
        ? `the ${rng.pick(NOUNS)}`
        : `${rng.pick(PREPOSITIONS)} the ${rng.pick(NOUNS)}`;
    }
    return expand(name, rng, depth + 1);
  });
}

function capitalize(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function countWords(text: string): number {
  return text.split(/\s+/).filter((w) => w.length > 0).length;
}

/** One sentence of seeded prose. */
export function proseSentence(rng: Rng): string {
  const raw = expand("sentence", rng, 0).replace(/\b([Aa])n ([^aeiou])/g, "$1 $2")
    .replace(/\b([Aa]) ([aeiou])/g, "$1n $2");
  return capitalize(raw);
}

/** Any source of haystack sentences measured in words or sentences. */
export interface Haystack {
  /** The first sentences of the stream covering exactly `words` words (the last may be cut). */
  sentences(words: number): HaystackSentence[];
}

/**
 * An endless stream of seeded prose.
 *
 * @example
 * ```ts
 * const prose = new ProseHaystack(7);
 * const text = joinSentences(prose.sentences(200)); // 200 words of varied prose
 * ```
 */
export class ProseHaystack implements Haystack {
  #rng: Rng;
  #cache: HaystackSentence[] = [];
  #words = 0;
  #untilParagraph = 0;

  constructor(seed: number) {
    this.#rng = new Rng(seed);
  }

  #grow(words: number): void {
    while (this.#words < words) {
      const paragraphStart = this.#untilParagraph === 0;
      if (paragraphStart) this.#untilParagraph = this.#rng.int(3, 7);
      this.#untilParagraph--;
      const text = proseSentence(this.#rng);
      const n = countWords(text);
      this.#cache.push({
        text,
        words: n,
        paragraphStart: paragraphStart && this.#cache.length > 0,
      });
      this.#words += n;
    }
  }

  sentences(words: number): HaystackSentence[] {
    this.#grow(words);
    return takeWords(this.#cache, words);
  }
}

/**
 * A haystack of real text, as RULER's essays (Paul Graham's, `PaulGrahamEssays.json`): the
 * file's sentences from its start, the text repeated when more words are asked than it holds
 * (as RULER repeats its essays). Paragraphs are split at blank lines, sentences after ".", "!"
 * or "?" followed by white space. Unlike {@linkcode ProseHaystack} the text may hold digits and
 * quotes, as RULER's essays do.
 *
 * @example
 * ```ts
 * const essays = EssayHaystack.fromFile("data/PaulGrahamEssays.json");
 * const text = joinSentences(essays.sentences(2000));
 * ```
 */
export class EssayHaystack implements Haystack {
  readonly #text: HaystackSentence[];
  readonly #words: number;

  /** The haystack of `text`; `label` names its source in errors. */
  constructor(text: string, label = "haystack text") {
    this.#text = [];
    for (const paragraph of text.split(/\n\s*\n/)) {
      const sentences = paragraph.trim().split(/(?<=[.!?])\s+/).filter((x) => x.trim() !== "");
      sentences.forEach((sentence, i) => {
        const clean = sentence.replace(/\s+/g, " ").trim();
        this.#text.push({ text: clean, words: countWords(clean), paragraphStart: i === 0 });
      });
    }
    if (this.#text.length > 0) this.#text[0].paragraphStart = false;
    this.#words = this.#text.reduce((n, s) => n + s.words, 0);
    if (this.#words === 0) throw new InputError(`${label}: expected text, found no words`);
  }

  /**
   * The haystack of a file: plain text, a JSON object with a string `text` (RULER's
   * `PaulGrahamEssays.json`), or JSON lines each with a string `text`. Read again only when the
   * file's size or modification time changed.
   */
  static fromFile(path: string): EssayHaystack {
    let version: string;
    try {
      const info = Deno.statSync(path);
      version = `${info.size}:${info.mtime?.getTime()}`;
    } catch (error) {
      throw new InputError(`${path}: cannot read the haystack file (${(error as Error).message})`);
    }
    const cached = ESSAY_FILES.get(path);
    if (cached?.version === version) return cached.haystack;
    const haystack = new EssayHaystack(essayText(path), path);
    ESSAY_FILES.set(path, { version, haystack });
    return haystack;
  }

  sentences(words: number): HaystackSentence[] {
    const repeats = Math.ceil(words / this.#words);
    const all: HaystackSentence[] = [];
    for (let r = 0; r < repeats; r++) {
      for (const [i, s] of this.#text.entries()) {
        all.push(r > 0 && i === 0 ? { ...s, paragraphStart: true } : s);
      }
    }
    return takeWords(all, words);
  }
}

/** Haystacks read, by path, with the size and modification time they were read at. */
const ESSAY_FILES = new Map<string, { version: string; haystack: EssayHaystack }>();

/** A haystack file's text: plain, `{"text": …}` JSON or JSON lines of `{"text": …}`. */
function essayText(path: string): string {
  let raw: string;
  try {
    raw = Deno.readTextFileSync(path);
  } catch (error) {
    throw new InputError(`${path}: cannot read the haystack file (${(error as Error).message})`);
  }
  if (!/\.jsonl?$/i.test(path)) return raw;
  const field = (value: unknown, where: string): string => {
    const text = (value as { text?: unknown } | null)?.text;
    if (typeof text !== "string") {
      throw new InputError(`${where}: expected an object with a string "text"`);
    }
    return text;
  };
  const parse = (line: string, where: string): unknown => {
    try {
      return JSON.parse(line);
    } catch (error) {
      throw new InputError(`${where}: not valid JSON (${(error as Error).message})`);
    }
  };
  if (/\.json$/i.test(path)) return field(parse(raw, path), path);
  return raw.split("\n").map((line, i) => [line, i] as const).filter(([line]) => line.trim() !== "")
    .map(([line, i]) => field(parse(line, `${path}:${i + 1}`), `${path}:${i + 1}`)).join("\n\n");
}

/** RULER's "noise" haystack: one filler paragraph, repeated. */
export const NOISE_SENTENCES: readonly string[] = [
  "The grass is green.",
  "The sky is blue.",
  "The sun is yellow.",
  "Here we go.",
  "There and back again.",
];

/** RULER's noise haystack, measured in sentences or in words. */
export class NoiseHaystack implements Haystack {
  /** The first `count` sentences of the repeated paragraph. */
  sentenceList(count: number): HaystackSentence[] {
    const out: HaystackSentence[] = [];
    for (let i = 0; i < count; i++) {
      const text = NOISE_SENTENCES[i % NOISE_SENTENCES.length];
      out.push({ text, words: countWords(text), paragraphStart: false });
    }
    return out;
  }

  sentences(words: number): HaystackSentence[] {
    const all = this.sentenceList(Math.ceil(words / 2) + 1);
    return takeWords(all, words);
  }
}

function takeWords(all: readonly HaystackSentence[], words: number): HaystackSentence[] {
  const out: HaystackSentence[] = [];
  let left = words;
  for (const sentence of all) {
    if (left <= 0) break;
    if (sentence.words <= left) {
      out.push(sentence);
      left -= sentence.words;
    } else {
      // A cut sentence still ends with a full stop, so an insertion after it reads cleanly.
      const cut = sentence.text.split(/\s+/).slice(0, left).join(" ").replace(/[,.]?$/, ".");
      out.push({ text: cut, words: left, paragraphStart: sentence.paragraphStart });
      left = 0;
    }
  }
  return out;
}

/** Join sentences: a space within a paragraph, a blank line between paragraphs. */
export function joinSentences(sentences: readonly HaystackSentence[]): string {
  let out = "";
  sentences.forEach((s, i) => {
    if (i > 0) out += s.paragraphStart ? "\n\n" : " ";
    out += s.text;
  });
  return out;
}

/** A text to place in a haystack at a relative depth (0 = first, 1 = last). */
export interface Insertion {
  text: string;
  depth: number;
}

/**
 * Insert texts between sentences at their depths (RULER: position = round(depth × sentence
 * count)); insertions at the same position keep their given order.
 */
export function insertAtDepths(
  sentences: readonly HaystackSentence[],
  insertions: readonly Insertion[],
): HaystackSentence[] {
  const at = insertions.map((ins, order) => ({
    ...ins,
    order,
    position: Math.round(Math.min(1, Math.max(0, ins.depth)) * sentences.length),
  })).sort((a, b) => a.position - b.position || a.order - b.order);
  const out: HaystackSentence[] = [];
  let next = 0;
  for (let i = 0; i <= sentences.length; i++) {
    while (next < at.length && at[next].position === i) {
      out.push({ text: at[next].text, words: countWords(at[next].text), paragraphStart: false });
      next++;
    }
    if (i < sentences.length) out.push(sentences[i]);
  }
  return out;
}

/** RULER's 40 evenly spaced needle depths, as fractions (0, 0.03, …, 1). */
export const DEPTH_GRID: readonly number[] = Array.from(
  { length: 40 },
  (_, i) => Math.round((100 * i) / 39) / 100,
);

const ONSETS = [
  "b",
  "br",
  "c",
  "ch",
  "d",
  "dr",
  "f",
  "fl",
  "g",
  "gr",
  "h",
  "j",
  "k",
  "l",
  "m",
  "n",
  "p",
  "pr",
  "r",
  "s",
  "sh",
  "st",
  "t",
  "tr",
  "v",
  "w",
  "z",
];
const VOWELS = ["a", "e", "i", "o", "u", "ai", "ea", "ou", "io"];
const CODAS = ["", "", "", "n", "r", "l", "s", "m", "nd", "rk", "st", "x"];

/** A pronounceable made-up word of `syllables` syllables (lower case). */
export function madeUpWord(rng: Rng, syllables: number): string {
  let out = "";
  for (let i = 0; i < syllables; i++) {
    out += rng.pick(ONSETS) + rng.pick(VOWELS) + (i === syllables - 1 ? rng.pick(CODAS) : "");
  }
  return out;
}

/** `count` distinct made-up words, none of them a word of the prose vocabulary. */
export function distinctMadeUpWords(
  rng: Rng,
  count: number,
  syllables: [number, number],
): string[] {
  const seen = new Set<string>([...NOUNS, ...ADJECTIVES]);
  const out: string[] = [];
  let attempts = 0;
  while (out.length < count) {
    const word = madeUpWord(rng, rng.int(syllables[0], syllables[1]));
    if (!seen.has(word)) {
      seen.add(word);
      out.push(word);
    }
    if (++attempts > count * 50 + 1000) {
      throw new Error(`madeUpWords: cannot find ${count} distinct words of ${syllables} syllables`);
    }
  }
  return out;
}
