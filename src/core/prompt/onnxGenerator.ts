/**
 * The local prompt engine: subject → n prompts from a GPT-2 ONNX model, in one batched decode.
 *
 * The prefix (start tag + subject) is the same for every prompt, so it is run once at batch 1
 * and its KV cache repeated for the n rows; each later step feeds one token per live row, and
 * rows that reach the end tag leave the batch.
 *
 * Tagged models: input = start tag + subject, output = subject + continuation up to the end tag.
 * Untagged and base models: the subject continued for the capped number of tokens, exactly as
 * the paper's control arm did (GPT-2's own end-of-text still stops a row, as in Hugging Face's
 * generate; it does not make the prompt "complete").
 *
 * Every model gets the clean-output rules of cleanOutput.ts: the continuation starts a new word,
 * never contains tag text, and prompt i depends on (seed, i) alone. The text is exactly
 * subject + continuation, trimmed.
 */
import { BotError } from "../errors.js";
import type { RandomSource } from "../random.js";
import type {
  GeneratedPrompt,
  GenerateRequest,
  PromptGenerator,
  SamplingSettings,
} from "../types.js";
import {
  needsWordBoundary,
  rowRandom,
  type TokenMasks,
  tagFragmentCut,
  tagTexts,
  tokenMasks,
} from "./cleanOutput.js";
import type { ModelMetadata } from "./modelDir.js";
import type { Gpt2OnnxDecoder, KvCache } from "./onnxDecoder.js";
import { TokenSampler } from "./sampler.js";
import { decodeTokens, END_OF_TEXT_ID, encodeTag, encodeText } from "./tokenizer.js";

export interface OnnxGeneratorOptions {
  sampling: SamplingSettings;
  /** Overrides the model's mean caption length as the default cap on new tokens. */
  maxNewTokens?: number;
}

interface Row {
  /** Index of this prompt in the request, so output order never depends on finishing order. */
  index: number;
  generated: number[];
  seen: Set<number>;
  complete: boolean;
  /** This row's own random stream, from (seed, index). */
  random: RandomSource;
  /** The continuation's text so far, decoded after every token (for the tag rules). */
  text: string;
  /** Where a tag fragment began in `text`, when one cut the row short. */
  cutAt?: number;
}

export class OnnxPromptGenerator implements PromptGenerator {
  readonly description: string;
  private readonly startIds: number[];
  private readonly endIds: number[];
  /** Tag texts whose fragments never appear in this generator's prompts (cleanOutput.ts). */
  readonly tags: readonly string[];
  private readonly masks: TokenMasks;

  constructor(
    private readonly decoder: Gpt2OnnxDecoder,
    private readonly options: OnnxGeneratorOptions,
  ) {
    const { metadata, dir } = decoder.model;
    this.description = `onnx:${dir}`;
    this.startIds = metadata.tags ? encodeTag(metadata.tags.start) : [];
    this.endIds = metadata.tags ? encodeTag(metadata.tags.end) : [];
    this.tags = tagTexts(metadata.tags);
    // Untagged models stop at GPT-2's end of text, which may also come first.
    this.masks = tokenMasks(this.tags, this.endIds.length > 0 ? this.endIds : [END_OF_TEXT_ID]);
  }

  /** The model's imagine-model.json (architecture, tags, mean caption length, provenance). */
  get metadata(): ModelMetadata {
    return this.decoder.model.metadata;
  }

  /**
   * The default cap on new tokens: the arm's setting, else the model's own `maxNewTokens`, else
   * its mean caption length rounded up.
   */
  get defaultMaxNewTokens(): number {
    const { metadata } = this.decoder.model;
    return (
      this.options.maxNewTokens ?? metadata.maxNewTokens ?? Math.ceil(metadata.meanCaptionTokens)
    );
  }

  async generate(request: GenerateRequest): Promise<GeneratedPrompt[]> {
    const sampling = { ...this.options.sampling, ...request.sampling };
    const subjectIds = encodeText(request.subject);
    const prefix = [...this.startIds, ...subjectIds];
    const { nPositions, vocabSize } = this.decoder.model.metadata.architecture;
    if (prefix.length >= nPositions) {
      throw new BotError(
        "GENERATION_FAILED",
        `the subject is ${prefix.length} tokens with its tag, longer than this model's ${nPositions}-token context`,
      );
    }
    const maxNewTokens = Math.min(
      request.maxNewTokens ?? this.defaultMaxNewTokens,
      nPositions - prefix.length,
    );
    const rows: Row[] = Array.from({ length: request.count }, (_, index) => ({
      index,
      generated: [],
      seen: new Set(prefix),
      complete: false,
      random: rowRandom(request.seed, index),
      text: "",
    }));
    const sampler = new TokenSampler(vocabSize, sampling, rows[0]?.random ?? rowRandom(0, 0));
    const wordBoundary = needsWordBoundary(request.subject);

    throwIfAborted(request.signal);
    // Prefix once at batch 1, then one copy of its cache per prompt.
    const first = await this.decoder.step([prefix], this.decoder.emptyCache(1));
    let cache: KvCache = this.decoder.selectRows(
      first.cache,
      rows.map(() => 0),
    );
    let logits = first.lastLogits;
    let logitsRowOf = rows.map(() => 0);
    let live = rows;

    for (let step = 0; step < maxNewTokens && live.length > 0; step++) {
      throwIfAborted(request.signal);
      const stillLive: Row[] = [];
      const keep: number[] = [];
      live.forEach((row, i) => {
        const rowLogits = logits.subarray(
          (logitsRowOf[i] as number) * first.vocab,
          ((logitsRowOf[i] as number) + 1) * first.vocab,
        );
        const allowed = this.allowedNext(row, request.subject, step === 0 && wordBoundary);
        const token = sampler.sample(rowLogits, row.seen, { allowed, random: row.random });
        row.generated.push(token);
        row.seen.add(token);
        if (this.endsWithEndTag(row.generated)) {
          row.complete = true;
        } else if (token !== END_OF_TEXT_ID && !this.cutAtTagFragment(row, request.subject)) {
          stillLive.push(row);
          keep.push(i);
        }
      });
      if (stillLive.length === 0 || step + 1 === maxNewTokens) break;
      if (stillLive.length < live.length) cache = this.decoder.selectRows(cache, keep);
      const next = await this.decoder.step(
        stillLive.map((row) => [row.generated[row.generated.length - 1] as number]),
        cache,
      );
      cache = next.cache;
      logits = next.lastLogits;
      logitsRowOf = stillLive.map((_, i) => i);
      live = stillLive;
    }

    return rows.map((row) => this.toPrompt(request.subject, row));
  }

  /** The tokens row may draw next (see cleanOutput.ts). */
  private allowedNext(row: Row, subject: string, firstOfWord: boolean): Uint8Array {
    const masks = this.masks;
    let allowed = firstOfWord ? masks.firstWord : masks.always;
    const before = row.text.length > 0 ? row.text : subject;
    const after = masks.after.get(before.slice(-1));
    if (after) allowed = firstOfWord ? both(masks.firstWord, after) : after;
    // A plain-text end tag is made of several tokens: once begun, its next token stays allowed.
    const pending = this.pendingEndTag(row.generated);
    const next = pending > 0 ? this.endIds[pending] : undefined;
    if (next !== undefined && allowed[next] === 0) {
      allowed = allowed.slice();
      allowed[next] = 1;
    }
    return allowed;
  }

  /** Length of the longest proper prefix of the end tag that `generated` ends with. */
  private pendingEndTag(generated: number[]): number {
    const end = this.endIds;
    for (let length = Math.min(end.length - 1, generated.length); length > 0; length--) {
      const offset = generated.length - length;
      if (end.slice(0, length).every((id, i) => generated[offset + i] === id)) return length;
    }
    return 0;
  }

  /**
   * Decodes the row's continuation and, when it spells part of a tag (beyond a plain-text end
   * tag the row is still writing), marks where to cut. Returns whether it did.
   */
  private cutAtTagFragment(row: Row, subject: string): boolean {
    const pending = this.pendingEndTag(row.generated);
    const ids = row.generated.slice(0, row.generated.length - pending);
    row.text = decodeTokens(ids);
    const cut = tagFragmentCut(subject, row.text, this.tags);
    if (cut === null) return false;
    row.cutAt = cut;
    return true;
  }

  private endsWithEndTag(generated: number[]): boolean {
    const end = this.endIds;
    if (end.length === 0 || generated.length < end.length) return false;
    const offset = generated.length - end.length;
    return end.every((id, i) => generated[offset + i] === id);
  }

  private toPrompt(subject: string, row: Row): GeneratedPrompt {
    let continuation = row.generated;
    if (row.complete) {
      continuation = continuation.slice(0, continuation.length - this.endIds.length);
    } else {
      if (continuation[continuation.length - 1] === END_OF_TEXT_ID)
        continuation = continuation.slice(0, -1);
      // A cap can fall inside a plain-text end tag: its first tokens are not caption text.
      continuation = continuation.slice(0, continuation.length - this.pendingEndTag(continuation));
    }
    // A cap can cut a multi-byte character in half; drop the replacement character it leaves.
    let text = decodeTokens(continuation).replace(/\uFFFD+$/u, "");
    if (row.cutAt !== undefined) text = text.slice(0, row.cutAt);
    return {
      text: (subject + text).trim(),
      tokens: row.generated.length,
      complete: row.complete,
    };
  }

  async close(): Promise<void> {
    // The decoder is shared between arms and owned by the registry that loaded it.
  }
}

/** Tokens allowed by both masks. */
function both(a: Uint8Array, b: Uint8Array): Uint8Array {
  const allowed = new Uint8Array(a.length);
  for (let id = 0; id < a.length; id++) allowed[id] = (a[id] as number) & (b[id] as number);
  return allowed;
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted)
    throw new BotError("ABORTED", "prompt generation was cancelled", { cause: signal.reason });
}
