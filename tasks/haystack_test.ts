/** The seeded prose, noise and essay haystacks and needle insertion. */

import { assert, assertEquals, assertThrows } from "../tests/assert.ts";
import {
  DEPTH_GRID,
  EssayHaystack,
  insertAtDepths,
  joinSentences,
  NoiseHaystack,
  ProseHaystack,
  proseSentence,
} from "./haystack.ts";
import { Rng } from "./generators/rng.ts";
import { InputError } from "../errors.ts";

function words(text: string): string[] {
  return text.split(/\s+/).filter((w) => w.length > 0);
}

Deno.test("prose: exactly n words, the same first words for any n, and deterministic by seed", () => {
  const long = joinSentences(new ProseHaystack(5).sentences(3000));
  assertEquals(words(long).length, 3000);
  for (const n of [1, 17, 250, 1999]) {
    const text = joinSentences(new ProseHaystack(5).sentences(n));
    assertEquals(words(text).length, n);
    // A cut sentence gets a full stop; otherwise the words are a prefix of the longer stream.
    assertEquals(words(text).slice(0, -1), words(long).slice(0, n - 1));
  }
  assert(
    joinSentences(new ProseHaystack(6).sentences(100)) !==
      joinSentences(new ProseHaystack(5).sentences(100)),
  );
});

Deno.test("prose holds no digits, hyphens, colons or quotes, and varies", () => {
  const text = joinSentences(new ProseHaystack(11).sentences(20000));
  assert(!/[0-9\-:"']/.test(text), "filler characters only");
  assert(text.includes("\n\n"), "paragraphs");
  const sentences = new Set<string>();
  const rng = new Rng(3);
  for (let i = 0; i < 500; i++) sentences.add(proseSentence(rng));
  assert(sentences.size >= 495, `${sentences.size} distinct sentences of 500`);
  const vocabulary = new Set(words(text.toLowerCase().replace(/[.,]/g, "")));
  assert(vocabulary.size > 400, `${vocabulary.size} distinct words`);
});

Deno.test("noise is RULER's repeated paragraph", () => {
  assertEquals(
    joinSentences(new NoiseHaystack().sentenceList(6)),
    "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again. The grass is green.",
  );
  assertEquals(words(joinSentences(new NoiseHaystack().sentences(7))).length, 7);
});

Deno.test("insertions go between sentences at round(depth × count), in order", () => {
  const s = new NoiseHaystack().sentenceList(4);
  const out = insertAtDepths(s, [{ text: "B", depth: 0.5 }, { text: "A", depth: 0 }, {
    text: "C",
    depth: 0.5,
  }, {
    text: "D",
    depth: 1,
  }]);
  assertEquals(out.map((x) => x.text), [
    "A",
    s[0].text,
    s[1].text,
    "B",
    "C",
    s[2].text,
    s[3].text,
    "D",
  ]);
  assertEquals(DEPTH_GRID.length, 40);
  assertEquals([DEPTH_GRID[0], DEPTH_GRID[39]], [0, 1]);
});

Deno.test("essays: the text's sentences from its start, repeated when too short", () => {
  const essays = new EssayHaystack("One two three. Four five!\n\nSix seven? Eight.\n");
  assertEquals(joinSentences(essays.sentences(5)), "One two three. Four five!");
  assertEquals(
    joinSentences(essays.sentences(8)),
    "One two three. Four five!\n\nSix seven? Eight.",
  );
  // Past its end the text starts again, as a new paragraph; a cut sentence ends with a stop.
  assertEquals(
    joinSentences(essays.sentences(10)),
    "One two three. Four five!\n\nSix seven? Eight.\n\nOne two.",
  );
  for (const n of [1, 7, 30]) assertEquals(words(joinSentences(essays.sentences(n))).length, n);
  assertThrows(() => new EssayHaystack(" \n\n "), InputError, "no words");
});

Deno.test("essay files: plain text, RULER's JSON and JSON lines; bad ones named", async () => {
  const dir = await Deno.makeTempDir({ prefix: "evictbench_essays_" });
  const write = (name: string, text: string) => {
    Deno.writeTextFileSync(`${dir}/${name}`, text);
    return `${dir}/${name}`;
  };
  const text = "An essay. Its second sentence.";
  const txt = write("a.txt", text);
  const json = write("PaulGrahamEssays.json", JSON.stringify({ text }));
  const jsonl = write(
    "e.jsonl",
    `${JSON.stringify({ text: "An essay." })}\n\n` +
      `${JSON.stringify({ text: "Its second sentence." })}\n`,
  );
  for (const path of [txt, json, jsonl]) {
    assertEquals(words(joinSentences(EssayHaystack.fromFile(path).sentences(5))), words(text));
  }
  assertThrows(
    () => EssayHaystack.fromFile(`${dir}/none.txt`),
    InputError,
    "none.txt: cannot read",
  );
  const bad = write("bad.jsonl", `${JSON.stringify({ text: "ok" })}\n{"text": 3}\n`);
  assertThrows(() => EssayHaystack.fromFile(bad), InputError, `${bad}:2: expected an object`);
  // An edited file is read again.
  write("a.txt", "Another text altogether, longer than the first.");
  assertEquals(joinSentences(EssayHaystack.fromFile(txt).sentences(2)), "Another text.");
  const broken = write("broken.json", "{");
  assertThrows(() => EssayHaystack.fromFile(broken), InputError, `${broken}: not valid JSON`);
  await Deno.remove(dir, { recursive: true });
});
