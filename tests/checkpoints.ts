/**
 * Helpers for tests that damage or rewrite a model directory's checkpoint.
 *
 * @module
 */

import { openSafetensors, type TensorToWrite, writeSafetensors } from "../engine/safetensors.ts";

/**
 * Rewrite `dir`/model.safetensors through the writer (every tensor read back as F32), letting
 * `edit` add, drop or replace tensors first.
 */
export async function editCheckpoint(
  dir: string,
  edit: (tensors: Record<string, TensorToWrite>) => void,
): Promise<void> {
  const path = `${dir}/model.safetensors`;
  const file = await openSafetensors(path);
  const tensors: Record<string, TensorToWrite> = {};
  for (const name of file.names()) {
    const info = file.info(name)!;
    tensors[name] = { dtype: "F32", shape: info.shape, data: await file.readF32(name) };
  }
  file.close();
  edit(tensors);
  await writeSafetensors(path, tensors, { metadata: { format: "pt" } });
}
