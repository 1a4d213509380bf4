/**
 * The conformance suite (conformance.ts) over every registered method, on tiny models of the
 * four architectures, with the reference attention and with onnxruntime. A new executor (the
 * GPU backend) adds one `defineConformanceTests` line.
 */

import "./mod.ts";
import { OrtAttention } from "../kernels/attention_ort.ts";
import { referenceAttention } from "../kernels/kv_store.ts";
import { defineConformanceTests } from "./conformance.ts";

defineConformanceTests({ name: "reference", create: () => referenceAttention });
defineConformanceTests({ name: "onnxruntime", create: () => new OrtAttention({ threads: 1 }) });
