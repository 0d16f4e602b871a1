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
 */
import { BotError } from "../errors.js";
import { seededRandom } from "../random.js";
import type {
  GeneratedPrompt,
  GenerateRequest,
  PromptGenerator,
  SamplingSettings,
} from "../types.js";
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
}

export class OnnxPromptGenerator implements PromptGenerator {
  readonly description: string;
  private readonly startIds: number[];
  private readonly endIds: number[];

  constructor(
    private readonly decoder: Gpt2OnnxDecoder,
    private readonly options: OnnxGeneratorOptions,
  ) {
    const { metadata, dir } = decoder.model;
    this.description = `onnx:${dir}`;
    this.startIds = metadata.tags ? encodeTag(metadata.tags.start) : [];
    this.endIds = metadata.tags ? encodeTag(metadata.tags.end) : [];
  }

  /** The default cap on new tokens: the model's mean caption length, rounded up. */
  get defaultMaxNewTokens(): number {
    return this.options.maxNewTokens ?? Math.ceil(this.decoder.model.metadata.meanCaptionTokens);
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
    const random = seededRandom(request.seed);
    const sampler = new TokenSampler(vocabSize, sampling, random);
    const rows: Row[] = Array.from({ length: request.count }, (_, index) => ({
      index,
      generated: [],
      seen: new Set(prefix),
      complete: false,
    }));

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
        const token = sampler.sample(rowLogits, row.seen);
        row.generated.push(token);
        row.seen.add(token);
        if (this.endsWithEndTag(row.generated)) {
          row.complete = true;
        } else if (token !== END_OF_TEXT_ID) {
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

    return rows.map((row) => this.toPrompt(request.subject, subjectIds, row));
  }

  private endsWithEndTag(generated: number[]): boolean {
    const end = this.endIds;
    if (end.length === 0 || generated.length < end.length) return false;
    const offset = generated.length - end.length;
    return end.every((id, i) => generated[offset + i] === id);
  }

  private toPrompt(subject: string, subjectIds: number[], row: Row): GeneratedPrompt {
    let continuation = row.generated;
    if (row.complete)
      continuation = continuation.slice(0, continuation.length - this.endIds.length);
    else if (continuation[continuation.length - 1] === END_OF_TEXT_ID)
      continuation = continuation.slice(0, -1);
    // Decode subject and continuation together: a token may merge bytes across the boundary.
    // A cap can cut a multi-byte character in half; drop the replacement character it leaves.
    const text = decodeTokens([...subjectIds, ...continuation])
      .replace(/\uFFFD+$/u, "")
      .trimEnd();
    return {
      text: text.startsWith(subject) ? text : subject + decodeTokens(continuation).trimEnd(),
      tokens: row.generated.length,
      complete: row.complete,
    };
  }

  async close(): Promise<void> {
    // The decoder is shared between arms and owned by the registry that loaded it.
  }
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted)
    throw new BotError("ABORTED", "prompt generation was cancelled", { cause: signal.reason });
}
