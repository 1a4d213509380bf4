/**
 * `evictbench sweep`. The sweep runner (configs, methods × budgets × tasks, results store,
 * reports) is not built yet; until it is, the command runs the engine end to end on a small
 * random Qwen3-architecture model it writes under .cache/: chunked prefill, greedy decoding
 * from the cache, then a real eviction of half of every head's context entries, showing the
 * memory the store gives back.
 *
 * @module
 */

import { generate } from "../engine/generate.ts";
import { Model } from "../engine/model.ts";
import { makeRandomModel } from "../engine/random_model.ts";

const DEMO_DIR = new URL("../.cache/demo-qwen3/", import.meta.url).pathname;

/** Run the sweep command (currently the engine demo). */
export async function runSweepCommand(config?: string): Promise<void> {
  if (config !== undefined) {
    console.log(`evictbench sweep: sweep configs are not supported yet (got ${config}).`);
  }
  console.log("evictbench sweep: the sweep runner is not available yet; running the engine demo.");
  const made = await makeRandomModel(DEMO_DIR, {
    arch: "qwen3",
    seed: 7,
    overrides: {
      hidden_size: 64,
      intermediate_size: 160,
      num_hidden_layers: 4,
      max_position_embeddings: 4096,
    },
    reuse: true,
  });
  console.log(`model: random Qwen3 architecture, ${made.parameters} parameters, ${DEMO_DIR}`);
  const model = await Model.load(DEMO_DIR);
  const tokenizer = model.tokenizer();
  const context = "The quick brown fox jumps over the lazy dog. ".repeat(12);
  const prompt = tokenizer.applyChatTemplate([{ role: "user", content: context }], {
    addGenerationPrompt: true,
  });
  const ids = Int32Array.from(tokenizer.encode(prompt, { addSpecialTokens: false }));
  const cache = model.createCache();
  const result = await generate(model, cache, ids, {
    maxNewTokens: 16,
    chunkSize: 64,
    decode: (t) => tokenizer.decode(t, { skipSpecialTokens: true }),
  });
  console.log(
    `prompt: ${ids.length} tokens, prefilled in chunks of 64 (${result.prefillMs.toFixed(1)} ms)`,
  );
  // A random model's tokens rarely decode to valid UTF-8, so show the ids.
  console.log(
    `greedy completion: ${result.tokens.length} tokens at ${
      result.decodeMsPerToken.toFixed(2)
    } ms/token, ids [${result.tokens.join(", ")}]`,
  );
  const before = cache.bytesHeld();
  for (let l = 0; l < model.config.numLayers; l++) {
    const keep = [...cache.lengths(l)].map((n) =>
      Int32Array.from({ length: Math.ceil(n / 2) }, (_, i) => 2 * i)
    );
    cache.evict(l, keep);
  }
  console.log(
    `KV store: ${before} bytes held before eviction, ${cache.bytesHeld()} after keeping every other entry (nominal ${cache.nominal()})`,
  );
}
