/**
 * The conformance suite (conformance.ts) over every registered method: on tiny models of the
 * four architectures with the reference attention and with onnxruntime, and on the WebGPU
 * backend (Mesa's llvmpipe in CI). The GPU part is kept small (~40 s on llvmpipe): two
 * architectures (Qwen3, and Gemma3 for sliding-window layers), each method's default policy
 * only, since the selector is host code the CPU runs cover with every policy. It is ignored
 * with one line when no adapter exists and fails under CI=true, as every GPU test does.
 */

import "./mod.ts";
import { Model } from "../engine/model.ts";
import { OrtAttention } from "../kernels/attention_ort.ts";
import { referenceAttention } from "../kernels/kv_store.ts";
import { gpuTest, testContext } from "../kernels/webgpu/test_support.ts";
import { cpuBackend, defineConformanceTests } from "./conformance.ts";

defineConformanceTests(cpuBackend("reference", () => referenceAttention));
defineConformanceTests(cpuBackend("onnxruntime", () => new OrtAttention({ threads: 1 })));
defineConformanceTests({
  name: "webgpu",
  load: async (dir) =>
    Model.load(dir, { backend: "webgpu", gpu: { context: await testContext() } }),
  unload: (model) => model.dispose(),
  register: (name, fn) => gpuTest(name, (_gpu, t) => fn(t)),
}, { archs: ["qwen3", "gemma3"], policyArch: null });
