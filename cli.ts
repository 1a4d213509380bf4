/**
 * The evictbench command line: one entry, one subcommand per job, each aliased as a
 * `deno task`. Bad input exits with code 2 and one line on stderr; a bug prints its stack.
 *
 * @module
 */

import { Command, CommanderError, InvalidArgumentError } from "commander";
import { isInputError } from "./errors.ts";
import { runForwardCommand } from "./cli/forward.ts";
import { runGenerateCommand } from "./cli/generate.ts";
import { runListCommand } from "./cli/list.ts";
import { runBenchCommand } from "./cli/bench.ts";
import { runSweepCommand } from "./cli/sweep.ts";
import { runReportCommand } from "./cli/report.ts";

/** Parse a positive integer option, naming the option on failure. */
function positiveInt(name: string): (value: string) => number {
  return function parse(value: string): number {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1) {
      throw new InvalidArgumentError(`${name} expects a positive integer, got "${value}"`);
    }
    return n;
  };
}

function notYet(name: string, issue: string): () => void {
  return function run(): void {
    console.log(`evictbench ${name}: not yet available (${issue}).`);
  };
}

/** Build the program; exported so tests can drive it without a subprocess. */
export function buildProgram(): Command {
  const program = new Command("evictbench")
    .description("A benchmark harness for KV-cache eviction in LLM inference.")
    .showSuggestionAfterError(true)
    .exitOverride();

  program.command("forward")
    .description("Write the logits of every position as little-endian float32 [T, vocab].")
    .requiredOption("--model <dir>", "Hugging Face model directory")
    .option("--ids <ids>", "comma-separated token ids")
    .option("--text <string>", "text to tokenize (no special tokens added)")
    .requiredOption("--out <file>", "output file")
    .option("--chunk-size <n>", "prefill chunk size in tokens", positiveInt("--chunk-size"))
    .option("--threads <n>", "onnxruntime threads", positiveInt("--threads"))
    .action(runForwardCommand);

  program.command("generate")
    .description("Greedy generation from a prompt; prints the completion.")
    .requiredOption("--model <dir>", "Hugging Face model directory")
    .requiredOption("--prompt <text>", "prompt text")
    .option(
      "--max-new-tokens <n>",
      "tokens to generate at most",
      positiveInt("--max-new-tokens"),
      64,
    )
    .option("--chat", "wrap the prompt in the model's chat template", false)
    .option("--stop <strings...>", "stop strings")
    .option("--chunk-size <n>", "prefill chunk size in tokens", positiveInt("--chunk-size"))
    .option("--threads <n>", "onnxruntime threads", positiveInt("--threads"))
    .action(runGenerateCommand);

  program.command("list")
    .description("List the registered architectures, methods and tasks.")
    .action(runListCommand);

  program.command("bench")
    .description("Measure speed against ceilings taken in the same run (see README).")
    .option("--quick", "small shapes, for a smoke run", false)
    .option("--out <file>", "also write the results as JSON")
    .option("--hf <file>", "JSON from tools/bench_hf.py to print side by side")
    .option("--keep-model <dir>", "write the random benchmark model here and keep it")
    .option("--threads <n>", "onnxruntime threads", positiveInt("--threads"))
    .action(runBenchCommand);

  program.command("sweep")
    .description("Run a sweep (models × methods × budgets × tasks).")
    .argument("[config]", "sweep config file")
    .action(runSweepCommand);

  program.command("report")
    .description("Render a run directory as an offline HTML report (plus cells.csv and SVGs).")
    .argument("[run]", "run directory")
    .option("--budget <r>", "budget shown in the task × method heatmap", Number)
    .action(runReportCommand);

  program.command("train-gate")
    .description("Train Fast KVzip gates for a model.")
    .action(notYet("train-gate", "arrives with the eviction methods work"));

  return program;
}

/** Run the CLI with `args` and return the exit code. */
export async function main(args: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(args, { from: "user" });
    return 0;
  } catch (error) {
    if (error instanceof CommanderError) {
      // commander has printed its message already.
      return error.exitCode === 0 ? 0 : 2;
    }
    if (isInputError(error)) {
      console.error(`error: ${error.message}`);
      return error.exitCode;
    }
    throw error;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
