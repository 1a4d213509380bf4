/**
 * Text ↔ token ids for a Hugging Face model directory, through `@huggingface/tokenizers`
 * (tokenizer.json + tokenizer_config.json), and chat-template rendering through
 * `@huggingface/jinja`, with the variables transformers' `apply_chat_template` provides.
 *
 * @module
 */

import { Tokenizer } from "@huggingface/tokenizers";
import { Template } from "@huggingface/jinja";
import { firstLineOf, InputError } from "../errors.ts";
import { joinPath } from "./safetensors.ts";

/** One chat message. */
export interface ChatMessage {
  role: string;
  content: string;
}

/** Options for {@linkcode TextTokenizer.encode}. */
export interface EncodeOptions {
  /** Apply the tokenizer's post-processor (e.g. prepend BOS); default true, as in HF. */
  addSpecialTokens?: boolean;
}

/** Options for {@linkcode TextTokenizer.decode}. */
export interface DecodeOptions {
  /** Drop special tokens from the text; default false, as in HF. */
  skipSpecialTokens?: boolean;
}

/** Options for {@linkcode TextTokenizer.applyChatTemplate}. */
export interface ChatTemplateOptions {
  /** Append the assistant-turn header (`add_generation_prompt`); default false. */
  addGenerationPrompt?: boolean;
  /** Extra template variables; they override the special-token variables, as in HF. */
  extra?: Record<string, unknown>;
}

/** The named special tokens transformers passes to chat templates. */
export const SPECIAL_TOKEN_NAMES: readonly string[] = [
  "bos_token",
  "eos_token",
  "unk_token",
  "sep_token",
  "pad_token",
  "cls_token",
  "mask_token",
];

/** What {@linkcode TextTokenizer} is built from besides the library tokenizer. */
export interface TextTokenizerParts {
  /** Named special tokens (bos_token, eos_token, ...). */
  specialTokens: Record<string, string>;
  /** The chat template, or null. */
  chatTemplate: string | null;
  /** The file the template came from, for messages. */
  source: string;
}

/** A loaded tokenizer. Create with {@linkcode loadTokenizer}. */
export class TextTokenizer {
  /** Directory the tokenizer was loaded from. */
  readonly dir: string;
  /** Named special tokens from tokenizer_config.json (bos_token, eos_token, ...), as strings. */
  readonly specialTokens: Readonly<Record<string, string>>;
  /** Number of distinct token ids, added tokens included. */
  readonly vocabSize: number;
  #tokenizer: Tokenizer;
  #chatTemplate: string | null;
  #chatTemplateSource: string;
  #compiled: Template | null = null;

  /** Use {@linkcode loadTokenizer}. */
  constructor(
    dir: string,
    tokenizer: Tokenizer,
    options: TextTokenizerParts,
  ) {
    this.dir = dir;
    this.#tokenizer = tokenizer;
    this.specialTokens = Object.freeze({ ...options.specialTokens });
    this.#chatTemplate = options.chatTemplate;
    this.#chatTemplateSource = options.source;
    this.vocabSize = tokenizer.get_vocab(true).size;
  }

  /** Whether a chat template is available. */
  get hasChatTemplate(): boolean {
    return this.#chatTemplate !== null;
  }

  /** The raw chat template, or null. */
  get chatTemplate(): string | null {
    return this.#chatTemplate;
  }

  /** Token ids of `text`. */
  encode(text: string, options: EncodeOptions = {}): number[] {
    return this.#tokenizer.encode(text, {
      add_special_tokens: options.addSpecialTokens ?? true,
    }).ids;
  }

  /** Text of `ids`. Ids outside the vocabulary are an InputError. */
  decode(ids: readonly number[], options: DecodeOptions = {}): string {
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || this.#tokenizer.id_to_token(id) === undefined) {
        throw new InputError(`${this.dir}: token id ${id} is not in the tokenizer's vocabulary`);
      }
    }
    // The library rejects an empty list; transformers decodes it to "".
    if (ids.length === 0) return "";
    return this.#tokenizer.decode([...ids], {
      skip_special_tokens: options.skipSpecialTokens ?? false,
    });
  }

  /** Id of a token string (e.g. "<|im_end|>"), or null when it is not in the vocabulary. */
  tokenId(token: string): number | null {
    return this.#tokenizer.token_to_id(token) ?? null;
  }

  /** Token string of an id, or null. */
  token(id: number): string | null {
    return this.#tokenizer.id_to_token(id) ?? null;
  }

  /**
   * Render `messages` with the chat template, passing `messages`, `add_generation_prompt`,
   * `tools`/`documents` (null) and the named special tokens, as transformers does. The result
   * already holds any BOS the template writes: encode it with `addSpecialTokens: false`.
   */
  applyChatTemplate(messages: readonly ChatMessage[], options: ChatTemplateOptions = {}): string {
    if (this.#chatTemplate === null) {
      throw new InputError(
        `${this.dir}: the tokenizer has no chat template (tokenizer_config.json chat_template or chat_template.jinja)`,
      );
    }
    if (messages.length === 0) {
      throw new InputError(`${this.dir}: cannot apply the chat template to an empty conversation`);
    }
    if (this.#compiled === null) {
      try {
        this.#compiled = new Template(this.#chatTemplate);
      } catch (error) {
        throw new InputError(
          `${this.#chatTemplateSource}: chat template does not parse (${firstLineOf(error)})`,
          { cause: error },
        );
      }
    }
    const variables: Record<string, unknown> = {
      messages: messages.map((m) => ({ ...m })),
      tools: null,
      documents: null,
      add_generation_prompt: options.addGenerationPrompt ?? false,
      ...this.specialTokens,
      ...(options.extra ?? {}),
    };
    try {
      return this.#compiled.render(variables);
    } catch (error) {
      throw new InputError(
        `${this.#chatTemplateSource}: chat template failed to render (${firstLineOf(error)})`,
        { cause: error },
      );
    }
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

async function readOptional(path: string): Promise<string | null> {
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw new InputError(`${path}: cannot read (${firstLineOf(error)})`, { cause: error });
  }
}

function parseJson(path: string, text: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new InputError(`${path}: not valid JSON (${firstLineOf(error)})`, { cause: error });
  }
  if (!isObject(parsed)) throw new InputError(`${path}: expected a JSON object`);
  return parsed;
}

/** A special token in tokenizer_config.json: a string or an AddedToken object with `content`. */
function tokenString(value: unknown): string | null {
  if (typeof value === "string") return value;
  if (isObject(value) && typeof value.content === "string") return value.content;
  return null;
}

function pickTemplate(path: string, value: unknown): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value === "string") return value;
  if (Array.isArray(value)) {
    const named = new Map<string, string>();
    for (const entry of value) {
      if (
        !isObject(entry) || typeof entry.name !== "string" || typeof entry.template !== "string"
      ) {
        throw new InputError(
          `${path}: chat_template list entries must be {name, template} objects`,
        );
      }
      named.set(entry.name, entry.template);
    }
    const chosen = named.get("default");
    if (chosen === undefined) {
      throw new InputError(
        `${path}: chat_template lists ${[...named.keys()].join(", ")} but no "default" template`,
      );
    }
    return chosen;
  }
  throw new InputError(`${path}: chat_template must be a string or a list of {name, template}`);
}

/**
 * Load the tokenizer of a model directory: tokenizer.json (required), tokenizer_config.json
 * (optional: special tokens, chat template, decoding options) and chat_template.jinja
 * (optional; overrides the config's template, as in transformers 5).
 */
export async function loadTokenizer(dir: string): Promise<TextTokenizer> {
  const tokenizerPath = joinPath(dir, "tokenizer.json");
  const tokenizerText = await readOptional(tokenizerPath);
  if (tokenizerText === null) {
    throw new InputError(
      `${dir}: tokenizer.json is missing (expected a Hugging Face tokenizer file)`,
    );
  }
  const tokenizerJson = parseJson(tokenizerPath, tokenizerText);
  const configPath = joinPath(dir, "tokenizer_config.json");
  const configText = await readOptional(configPath);
  const config = configText === null ? {} : parseJson(configPath, configText);

  const specialTokens: Record<string, string> = {};
  for (const name of SPECIAL_TOKEN_NAMES) {
    const value = tokenString(config[name]);
    if (value !== null) specialTokens[name] = value;
  }
  let chatTemplate = pickTemplate(configPath, config.chat_template);
  let source = configPath;
  const jinjaPath = joinPath(dir, "chat_template.jinja");
  const jinja = await readOptional(jinjaPath);
  if (jinja !== null) {
    chatTemplate = jinja;
    source = jinjaPath;
  }
  // The tokenizers library reads AddedToken objects as plain strings only.
  const libraryConfig: Record<string, unknown> = { ...config, ...specialTokens };
  // transformers 5 defaults clean_up_tokenization_spaces to false and ignores it for BPE models
  // (it would strip real spaces before punctuation); the library defaults it to true.
  const model = tokenizerJson.model;
  const isBpe = isObject(model) && model.type === "BPE";
  const forced = config.clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output ===
    true;
  libraryConfig.clean_up_tokenization_spaces = config.clean_up_tokenization_spaces === true &&
    (!isBpe || forced);
  let tokenizer: Tokenizer;
  try {
    tokenizer = new Tokenizer(tokenizerJson, libraryConfig);
  } catch (error) {
    throw new InputError(
      `${tokenizerPath}: unsupported or malformed tokenizer (${firstLineOf(error)})`,
      {
        cause: error,
      },
    );
  }
  return new TextTokenizer(dir, tokenizer, { specialTokens, chatTemplate, source });
}
