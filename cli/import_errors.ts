/**
 * Reports bad input met while the CLI's modules load, one line and its exit code, like the
 * commands' own errors. A method plugin registers when its module is imported, so a definition
 * `registerMethod` refuses (a taken id, a parameter without a default) fails before `main` runs;
 * without this, Deno prints it as an uncaught error with a stack. Imported first by `cli.ts`,
 * and active only when `cli.ts` is the program: tests that import the CLI keep Deno's default.
 *
 * @module
 */

import { isInputError } from "../errors.ts";

/**
 * From now on, an {@linkcode InputError} that nothing catches (one thrown while a module is
 * evaluated included) prints `error: <message>` and exits with its code. Other errors keep
 * Deno's report, stack included.
 */
export function reportUncaughtInputErrors(): void {
  globalThis.addEventListener("unhandledrejection", (event) => {
    if (!isInputError(event.reason)) return;
    event.preventDefault();
    console.error(`error: ${event.reason.message}`);
    Deno.exit(event.reason.exitCode);
  });
}

if (Deno.mainModule === new URL("../cli.ts", import.meta.url).href) reportUncaughtInputErrors();
