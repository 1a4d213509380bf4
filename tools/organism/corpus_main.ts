/**
 * The corpus command alone, for machines that have a Deno binary but no npm registry (a GPU
 * machine lent without network): `deno bundle tools/organism/corpus_main.ts -o corpus.js` here,
 * then `ORGANISM_CORPUS_BUNDLE=corpus.js python tools/organism/run.py …` there. It takes the
 * same options as `deno task corpus`.
 *
 * @module
 */

import { CommanderError } from "commander";
import { corpusCommand } from "../../cli/corpus.ts";
import { isInputError } from "../../errors.ts";

if (import.meta.main) {
  try {
    await corpusCommand().exitOverride().parseAsync(Deno.args, { from: "user" });
  } catch (error) {
    if (error instanceof CommanderError) Deno.exit(error.exitCode === 0 ? 0 : 2);
    if (!isInputError(error)) throw error;
    console.error(`error: ${error.message}`);
    Deno.exit(error.exitCode);
  }
}
