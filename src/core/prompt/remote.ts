/**
 * A PromptGenerator backed by a remote text-generation model through @huggingface/inference:
 * a dedicated Inference Endpoint (endpointUrl) or a Hub model id routed to an Inference
 * Provider (model, provider). Semantics mirror the local ONNX engine: the model continues
 * (start tag + subject) for tagged models or the bare subject otherwise, and the prompt is the
 * subject plus that continuation, cut at the end tag, tags removed.
 *
 * Wire format: @huggingface/inference v4 sends text generation for hf-inference and endpoints to
 * the OpenAI-compatible `…/v1/completions` route, flattening `parameters` into the body
 * (`max_new_tokens` becomes `max_tokens`). Its parsed result keeps only the text, so the raw
 * JSON is read alongside it for the finish reason and the token count.
 */

import {
  InferenceClient,
  type InferenceProviderOrPolicy,
  PROVIDERS_OR_POLICIES,
  type TextGenerationInput,
} from "@huggingface/inference";
import { BotError, ConfigError } from "../errors.js";
import { describeHuggingFaceFailure, routeHuggingFaceLogs } from "../huggingface.js";
import { asRecord, RemoteCallError, type Sleep, withRetry, withTimeout } from "../retry.js";
import type {
  GeneratedPrompt,
  GenerateRequest,
  Logger,
  PromptGenerator,
  SamplingSettings,
} from "../types.js";
import { tagFragmentCut, tagTexts } from "./cleanOutput.js";

export interface PromptTags {
  start: string;
  end: string;
}

export interface RemoteGeneratorOptions {
  /** Hub model id, e.g. "org/gpt2-xl-laion-tags". Exactly one of model and endpointUrl. */
  model?: string;
  /** A dedicated Inference Endpoint or any server speaking the same API. */
  endpointUrl?: string;
  /** Inference Provider for model mode ("hf-inference", "auto", …); not with endpointUrl. */
  provider?: string;
  /** Hugging Face token (HF_TOKEN), passed in by the caller; never logged or put in errors. */
  token?: string;
  /** The model's caption tags; null or absent for untagged models. */
  tags?: PromptTags | null;
  /** Default cap on new tokens (the model's mean caption length in tokens). */
  maxNewTokens: number;
  sampling: SamplingSettings;
  /** Per attempt, not per batch. */
  timeoutMs: number;
  /** Extra attempts per prompt after a retryable failure. */
  retries: number;
  retryBaseDelayMs?: number;
  retryMaxDelayMs?: number;
  logger?: Logger;
  /** Replaces global fetch for every call the client makes (Hub lookups included). */
  fetch?: typeof fetch;
  /** Injected in tests so that backoff does not wait for real. */
  sleep?: Sleep;
  /** Jitter source in [0, 1); seed it in tests. */
  random?: () => number;
}

type GenerationParameters = NonNullable<TextGenerationInput["parameters"]>;

/** What the server told us beyond the text, from whichever response shape it used. */
interface CompletionFacts {
  finishReason: string | undefined;
  /** vLLM names the stop string that ended generation. */
  stopReason: unknown;
  generatedTokens: number | undefined;
}

const DEFAULT_RETRY_BASE_DELAY_MS = 500;
const DEFAULT_RETRY_MAX_DELAY_MS = 20_000;

export function createRemoteGenerator(options: RemoteGeneratorOptions): PromptGenerator {
  const target = validateTarget(options);
  validateLimits(options);
  const tags = options.tags ?? null;
  const client = new InferenceClient(options.token);
  const baseFetch = options.fetch ?? globalThis.fetch;
  const logger = options.logger?.child({ component: "remote-prompt", target: target.label });
  if (options.logger) routeHuggingFaceLogs(options.logger);
  const lifetime = new AbortController();

  async function requestOnce(
    inputs: string,
    parameters: GenerationParameters,
    signal: AbortSignal,
  ): Promise<{ text: string; facts: CompletionFacts }> {
    let lastResponse: Response | undefined;
    let lastJson: unknown;
    // Sees each response before the library parses it: Retry-After on failures, and the
    // finish reason and token count that the library's parsed result drops.
    const recordingFetch: typeof fetch = async (input, init) => {
      const response = await baseFetch(input, init);
      lastResponse = response;
      lastJson = undefined;
      if (response.ok && response.headers.get("content-type")?.includes("json")) {
        lastJson = await response
          .clone()
          .json()
          .catch(() => undefined);
      }
      return response;
    };
    try {
      const output = await client.textGeneration(
        { ...target.args, inputs, parameters },
        // The library's own 503 retry loops immediately and forever; retries are ours.
        { fetch: recordingFetch, signal, retry_on_error: false },
      );
      return { text: output.generated_text, facts: completionFacts(lastJson, output.details) };
    } catch (error) {
      throw describeHuggingFaceFailure(
        error,
        target.label,
        lastResponse,
        "returned a malformed response",
      );
    }
  }

  async function generateOne(
    request: GenerateRequest,
    index: number,
    signal: AbortSignal,
  ): Promise<GeneratedPrompt> {
    const sampling = { ...options.sampling, ...request.sampling };
    const maxNewTokens = request.maxNewTokens ?? options.maxNewTokens;
    const seed = promptSeed(request.seed, index);
    const inputs = tags ? `${tags.start}${request.subject}` : request.subject;
    const parameters = generationParameters(sampling, maxNewTokens, seed, tags);
    const { text, facts } = await withRetry(
      () =>
        withTimeout(
          (attemptSignal) => requestOnce(inputs, parameters, attemptSignal),
          options.timeoutMs,
          signal,
          target.label,
        ),
      {
        retries: options.retries,
        baseDelayMs: options.retryBaseDelayMs ?? DEFAULT_RETRY_BASE_DELAY_MS,
        maxDelayMs: options.retryMaxDelayMs ?? DEFAULT_RETRY_MAX_DELAY_MS,
        signal,
        sleep: options.sleep,
        random: options.random,
        onRetry: ({ attempt, delayMs, error }) =>
          logger?.warn(
            {
              index,
              attempt,
              delayMs,
              status: error instanceof RemoteCallError ? error.status : undefined,
              err: error,
            },
            "remote prompt request failed; retrying",
          ),
      },
    );
    const prompt = toGeneratedPrompt(request.subject, text, tags, facts);
    logger?.debug({ index, seed, tokens: prompt.tokens, complete: prompt.complete }, "prompt");
    return prompt;
  }

  return {
    description: `remote text generation: ${target.label}`,

    async generate(request) {
      if (lifetime.signal.aborted) {
        throw new BotError("GENERATION_FAILED", `${target.label}: the generator is closed`);
      }
      if (request.signal?.aborted) {
        throw new BotError("ABORTED", "The request was cancelled before generation started", {
          cause: request.signal.reason,
        });
      }
      // One failed prompt fails the batch, so its siblings are cancelled instead of running on.
      const batch = new AbortController();
      const signal = AbortSignal.any(
        [batch.signal, lifetime.signal, request.signal].filter(
          (candidate): candidate is AbortSignal => candidate !== undefined,
        ),
      );
      const pending = Array.from({ length: request.count }, (_, index) =>
        generateOne(request, index, signal),
      );
      try {
        return await Promise.all(pending);
      } catch (error) {
        batch.abort();
        // Return only once no request of this batch is still in flight.
        await Promise.allSettled(pending);
        throw error;
      }
    },

    async close() {
      lifetime.abort();
    },
  };
}

/**
 * The seed for prompt `index` of a request: a bijective 32-bit mix of (seed, index), so the
 * prompts of one request get distinct seeds and neighbouring request seeds do not share any
 * (plain seed + index would make request 1's second prompt equal request 2's first).
 */
export function promptSeed(seed: number, index: number): number {
  const low = seed >>> 0;
  const high = Math.floor(seed / 2 ** 32) >>> 0;
  return mix32(low ^ mix32(index ^ mix32(high + 0x9e3779b9)));
}

/** murmur3's 32-bit finaliser (a bijection on uint32). */
function mix32(value: number): number {
  let x = value >>> 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  x ^= x >>> 16;
  return x >>> 0;
}

/**
 * Text-generation parameters for one prompt. Disabled settings are left out rather than sent
 * as their neutral value, because TGI rejects temperature 0, top_k 0 and top_p 1; temperature
 * 0 means greedy, as in the local sampler.
 */
export function generationParameters(
  sampling: SamplingSettings,
  maxNewTokens: number,
  seed: number,
  tags: PromptTags | null,
): GenerationParameters {
  const sample = sampling.temperature > 0;
  return {
    max_new_tokens: maxNewTokens,
    seed,
    do_sample: sample,
    ...(sample ? { temperature: sampling.temperature } : {}),
    ...(sample && sampling.topK > 0 ? { top_k: sampling.topK } : {}),
    ...(sample && sampling.topP < 1 ? { top_p: sampling.topP } : {}),
    repetition_penalty: sampling.repetitionPenalty,
    return_full_text: false,
    details: true,
    ...(tags ? { stop: [tags.end] } : {}),
  };
}

/**
 * Builds the prompt from the continuation the server returned.
 *
 * `complete` is true when the end tag appears in the continuation, or when the server says it
 * stopped on the stop sequence (the end tag) but stripped it from the text, as OpenAI-style
 * servers do: TGI's "stop_sequence", vLLM's stop_reason naming the tag, or the OpenAI "stop".
 * OpenAI's "stop" also covers an end-of-sequence token; for a tagged caption model that ends
 * the caption just the same. Untagged models are never complete.
 *
 * `tokens` is the server's count (details.generated_tokens or usage.completion_tokens) when it
 * reports one. Otherwise it is an estimate: one token per 4 characters of continuation, the
 * usual ratio for GPT-2's BPE on English, plus one for an end tag the server stripped.
 */
export function toGeneratedPrompt(
  subject: string,
  continuation: string,
  tags: PromptTags | null,
  facts: CompletionFacts,
): GeneratedPrompt {
  let kept = continuation;
  // The part of the continuation the model generated up to where it stopped counting.
  let counted = continuation;
  let complete = false;
  let strippedEndTag = false;
  if (tags) {
    const endAt = kept.indexOf(tags.end);
    if (endAt >= 0) {
      kept = kept.slice(0, endAt);
      counted = continuation.slice(0, endAt + tags.end.length);
      complete = true;
    } else if (stoppedAtStopSequence(facts, tags.end)) {
      complete = true;
      strippedEndTag = true;
    }
    kept = kept.replaceAll(tags.start, "");
  }
  // Tag text the server let through (a fragment of a tag, or another model's tags) is cut
  // before the word that holds it, as the local engine does; such a prompt is not complete.
  const cut = tagFragmentCut(subject, kept, tagTexts(tags));
  if (cut !== null) {
    kept = kept.slice(0, cut);
    complete = false;
  }
  const tokens = facts.generatedTokens ?? Math.ceil(counted.length / 4) + (strippedEndTag ? 1 : 0);
  return { text: `${subject}${kept}`.trim(), tokens, complete };
}

function stoppedAtStopSequence(facts: CompletionFacts, endTag: string): boolean {
  if (facts.stopReason === endTag) return true;
  return facts.finishReason === "stop_sequence" || facts.finishReason === "stop";
}

/** Reads the finish reason and token count from an OpenAI-style or TGI-style response. */
function completionFacts(raw: unknown, details: unknown): CompletionFacts {
  const body = asRecord(Array.isArray(raw) ? raw[0] : raw);
  const choices = body?.choices;
  const choice = Array.isArray(choices) ? asRecord(choices[0]) : undefined;
  const tgiDetails = asRecord(body?.details) ?? asRecord(details);
  const usage = asRecord(body?.usage);
  const finishReason = choice?.finish_reason ?? tgiDetails?.finish_reason;
  const generatedTokens = tgiDetails?.generated_tokens ?? usage?.completion_tokens;
  return {
    finishReason: typeof finishReason === "string" ? finishReason : undefined,
    stopReason: choice?.stop_reason,
    generatedTokens:
      typeof generatedTokens === "number" && Number.isInteger(generatedTokens)
        ? generatedTokens
        : undefined,
  };
}

interface Target {
  args:
    | { model: string }
    | { endpointUrl: string }
    | { model: string; provider: InferenceProviderOrPolicy };
  /** For logs and errors: the model id, or the endpoint URL without credentials or query. */
  label: string;
}

function validateTarget(options: RemoteGeneratorOptions): Target {
  const model = options.model?.trim() || undefined;
  const endpointUrl = options.endpointUrl?.trim() || undefined;
  if ((model === undefined) === (endpointUrl === undefined)) {
    throw new ConfigError(
      `Remote prompt generator: set exactly one of model (a Hub model id) or endpointUrl (an Inference Endpoint URL); got ${
        model && endpointUrl ? "both" : "neither"
      }`,
    );
  }
  if (endpointUrl !== undefined) {
    if (options.provider) {
      throw new ConfigError(
        "Remote prompt generator: provider applies to model ids only; remove it or use model instead of endpointUrl",
      );
    }
    let url: URL;
    try {
      url = new URL(endpointUrl);
    } catch {
      throw new ConfigError(`Remote prompt generator: endpointUrl is not a valid URL`);
    }
    if (url.protocol !== "https:" && url.protocol !== "http:") {
      throw new ConfigError(
        `Remote prompt generator: endpointUrl must be http(s), got ${url.protocol}`,
      );
    }
    return {
      args: { endpointUrl },
      label: `Hugging Face endpoint ${url.origin}${url.pathname.replace(/\/+$/, "")}`,
    };
  }
  const provider = options.provider;
  if (provider === undefined) {
    return { args: { model: model as string }, label: `Hugging Face model ${model}` };
  }
  if (!isProvider(provider)) {
    throw new ConfigError(
      `Remote prompt generator: unknown provider "${provider}"; use one of ${PROVIDERS_OR_POLICIES.join(", ")}`,
    );
  }
  return {
    args: { model: model as string, provider },
    label: `Hugging Face model ${model} via ${provider}`,
  };
}

function isProvider(value: string): value is InferenceProviderOrPolicy {
  return (PROVIDERS_OR_POLICIES as readonly string[]).includes(value);
}

function validateLimits(options: RemoteGeneratorOptions): void {
  const positiveInteger = (value: number) => Number.isInteger(value) && value > 0;
  if (!positiveInteger(options.maxNewTokens)) {
    throw new ConfigError(`Remote prompt generator: maxNewTokens must be a positive integer`);
  }
  if (!(options.timeoutMs > 0)) {
    throw new ConfigError(`Remote prompt generator: timeoutMs must be positive`);
  }
  if (!Number.isInteger(options.retries) || options.retries < 0) {
    throw new ConfigError(`Remote prompt generator: retries must be an integer ≥ 0`);
  }
  if (options.tags && (!options.tags.start || !options.tags.end)) {
    throw new ConfigError(`Remote prompt generator: tags need a non-empty start and end`);
  }
}
