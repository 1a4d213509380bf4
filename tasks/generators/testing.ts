/**
 * Tokenizers for the task tests: the tiny byte-level BPE of the random models (almost a token
 * per character) and the fixture tokenizer (tests/fixtures/tokenizer, a Llama-3-style
 * pre-tokenizer with a ChatML template and a default system message).
 *
 * @module
 */

import { loadTokenizer, type TextTokenizer } from "../../engine/tokenizer.ts";
import {
  type TinyArch,
  tinyTokenizerConfig,
  tinyTokenizerJson,
} from "../../engine/random_model.ts";

const cache = new Map<string, Promise<TextTokenizer>>();

/** The tiny tokenizer of `makeRandomModel` for `arch` (written once to a temporary directory). */
export function tinyTokenizer(arch: TinyArch = "qwen3"): Promise<TextTokenizer> {
  const key = `tiny:${arch}`;
  let promise = cache.get(key);
  if (promise === undefined) {
    promise = (async () => {
      const dir = await Deno.makeTempDir({ prefix: `evictbench_tasks_${arch}_` });
      await Deno.writeTextFile(`${dir}/tokenizer.json`, JSON.stringify(tinyTokenizerJson(arch)));
      await Deno.writeTextFile(
        `${dir}/tokenizer_config.json`,
        JSON.stringify(tinyTokenizerConfig(arch)),
      );
      const tokenizer = await loadTokenizer(dir);
      await Deno.remove(dir, { recursive: true });
      return tokenizer;
    })();
    cache.set(key, promise);
  }
  return promise;
}

/** The fixture tokenizer in tests/fixtures/tokenizer. */
export function fixtureTokenizer(): Promise<TextTokenizer> {
  let promise = cache.get("fixture");
  if (promise === undefined) {
    promise = loadTokenizer(new URL("../../tests/fixtures/tokenizer/", import.meta.url).pathname);
    cache.set("fixture", promise);
  }
  return promise;
}
