/**
 * `evictbench list`: what is registered.
 *
 * @module
 */

import { ARCHITECTURES } from "../engine/types.ts";
import { SUPPORTED_MODEL_TYPES } from "../engine/config.ts";

/** Print the registered architectures, methods and tasks. */
export function runListCommand(): void {
  console.log("architectures:");
  for (const arch of ARCHITECTURES) {
    const types = Object.entries(SUPPORTED_MODEL_TYPES).filter(([, a]) => a === arch).map(([t]) =>
      t
    );
    console.log(`  ${arch.padEnd(8)} model_type ${types.join(", ")}`);
  }
  console.log("methods:\n  (none registered yet)");
  console.log("tasks:\n  (none registered yet)");
}
