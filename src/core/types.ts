/**
 * The contracts between imagine-bot's layers. Adapters (Discord, Slack, CLI) and commands depend
 * on these; implementations live next to them in src/core and stay lean.
 *
 * Dependency direction: adapters → commands → core. Nothing in src/core imports an adapter, a
 * command or a platform SDK (test/boundary.test.ts fails if it does).
 */

/**
 * How the next token is drawn from the model's logits. Applied in this order: repetition
 * penalty, temperature, top-k, top-p, then a draw from the seeded random source.
 *
 * @example
 * const sampling: SamplingSettings = { temperature: 0.9, topK: 50, topP: 0.95, repetitionPenalty: 1.2 };
 */
export interface SamplingSettings {
  /** Divides the logits; lower is more conservative. 0 means greedy (argmax). */
  temperature: number;
  /** Keep only the k most likely tokens; 0 disables the cut. */
  topK: number;
  /** Keep the smallest set of tokens whose probability sums to at least p; 1 disables the cut. */
  topP: number;
  /**
   * CTRL-style penalty (Keskar et al. 2019) for tokens already in the sequence, subject included:
   * positive logits are divided by it, negative ones multiplied. 1 disables it.
   */
  repetitionPenalty: number;
}

/** One request to a prompt generator. */
export interface GenerateRequest {
  /** The bare subject a person typed, already validated (see validateSubject). */
  subject: string;
  /** How many prompts to write for this subject, decoded together as one batch. */
  count: number;
  /** Same seed, same model, same settings → same prompts. */
  seed: number;
  /** Cap on new tokens; defaults to the model's mean caption length in tokens. */
  maxNewTokens?: number;
  /** Overrides the arm's sampling settings field by field. */
  sampling?: Partial<SamplingSettings>;
  /** Aborts generation between decoding steps (or the remote request). */
  signal?: AbortSignal;
}

/** One prompt written for a subject. */
export interface GeneratedPrompt {
  /** The full prompt text: the subject followed by the model's continuation, tags removed. */
  text: string;
  /** Number of tokens the model generated (end tag included when it was reached). */
  tokens: number;
  /** True when the model closed the caption with its end tag; untagged models never do. */
  complete: boolean;
}

/**
 * Turns a subject into complete text-to-image prompts. Implemented by the local ONNX engine
 * (src/core/prompt/onnxGenerator.ts) and by a remote text-generation endpoint
 * (src/core/prompt/remote.ts). Implementations are safe to call concurrently.
 *
 * @example
 * const prompts = await generator.generate({ subject: "a lighthouse", count: 5, seed: 1 });
 * // → [{ text: "a lighthouse on a cliff at sunset, oil painting", tokens: 9, complete: true }, …]
 */
export interface PromptGenerator {
  /** Describes the model for logs and provenance (never shown to raters during a study). */
  readonly description: string;
  generate(request: GenerateRequest): Promise<GeneratedPrompt[]>;
  /** Releases native sessions or sockets. Safe to call twice. */
  close(): Promise<void>;
}

/** Structured logger (pino-compatible subset) so the core does not depend on a logging library. */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  child(bindings: object): Logger;
}

/** What to render. Backends use every field they support and ignore the rest. */
export interface ImageRequest {
  prompt: string;
  negativePrompt?: string;
  width: number;
  height: number;
  /** Denoising steps. */
  steps: number;
  /** Classifier-free guidance scale (CFG). */
  guidance: number;
  seed: number;
  signal?: AbortSignal;
  /** Called after each denoising step by backends that run the steps themselves (local). */
  onStep?: (step: number, of: number) => void;
}

/** A rendered image, always as PNG bytes that have been decoded once to prove they are an image. */
export interface RenderedImage {
  png: Buffer;
  width: number;
  height: number;
  /** The model that rendered it, for the PNG's parameters chunk ("stabilityai/stable-diffusion-2"). */
  model: string;
  /** The sampler, where the backend reports or takes one ("Euler a"). */
  sampler?: string;
  /** The seed the backend used (some backends ignore the requested one). */
  seed: number;
  /** Which server rendered it, when not the ImageBackend's own name (a pool's choice: "gpu1"). */
  backend?: string;
}

/**
 * A text-to-image service: Hugging Face Inference, AUTOMATIC1111-compatible servers, ComfyUI.
 * Implementations time out, retry what is worth retrying, and never return bytes that are not a
 * decodable image. Safe to call concurrently; the queue bounds how many calls run at once.
 *
 * @example
 * const image = await backend.render({ prompt: "a lighthouse at dusk, oil painting", width: 768, height: 768, steps: 30, guidance: 7.5, seed: 42 });
 */
export interface ImageBackend {
  /** Registry name: "huggingface" | "automatic1111" | "comfyui" | "local" (or a test's own). */
  readonly name: string;
  render(request: ImageRequest): Promise<RenderedImage>;
  close(): Promise<void>;
}

/**
 * One /imagine result, stored server-side. `arm` never leaves the server while a study runs: it
 * is not in messages, file names, alt text or PNG metadata.
 */
export interface Generation {
  id: string;
  createdAt: string;
  platform: string;
  /** Server (Discord guild) or workspace (Slack team), when there is one. */
  server?: string;
  channel?: string;
  /** The platform's reference to the posted message, filled in by the adapter once posted. */
  messageRef?: string;
  requester: string;
  subject: string;
  arm: string;
  prompt: string;
  /** Whether the prompt model closed its caption with the end tag. */
  promptComplete: boolean;
  seed: number;
  image: {
    backend: string;
    model: string;
    width: number;
    height: number;
    steps: number;
    guidance: number;
    sampler?: string;
    negativePrompt?: string;
    /** Where the PNG is stored, relative to the data directory. */
    path: string;
  };
  timings: { queuedMs: number; promptMs: number; renderMs: number; totalMs: number };
  studyId?: string;
  /** A batch study's plan item ("s1-007": survey 1, position 7); says nothing about the arm. */
  studyItem?: string;
}

/** Where generation records go. The vote store implements it; tests use a memory one. */
export interface GenerationStore {
  saveGeneration(generation: Generation): Promise<void>;
}

/** The two rating scales of the paper: image quality and faithfulness to the subject. */
export type Dimension = "quality" | "faithfulness";
export const DIMENSIONS: readonly Dimension[] = ["quality", "faithfulness"];

/** One rater's current vote on one dimension of one generation (Likert 1–4). */
export interface Vote {
  generationId: string;
  rater: string;
  dimension: Dimension;
  score: number;
  /** When this vote was cast (ISO 8601). */
  at: string;
}

/** Every change to a vote, appended to the event log so history can be audited and replayed. */
export interface VoteEvent {
  kind: "add" | "replace" | "retract";
  generationId: string;
  rater: string;
  dimension: Dimension;
  /** The new score (add, replace) or the retracted one (retract). */
  score: number;
  /** The score replaced (replace only). */
  previous?: number;
  at: string;
  /**
   * What made the change: the platform's name for a live reaction ("discord", "slack": the
   * generation's platform unless the caller says otherwise), "reconcile" for a change that
   * reconciliation made to match the reactions visible on the message (votes/reconcile.ts).
   * Absent on events written before this field existed (those were all live).
   */
  source?: string;
  /** The platform's id of the reaction event, when it gave one (Slack's event_id). */
  eventId?: string;
}

/**
 * A vote as given to castVote / retractVote, with where it came from (VoteEvent.source) and,
 * when the platform says, when it happened (`at`, ISO 8601) and the event's id (`eventId`).
 * Changes to one vote resolve to the latest by (at, event id) in every process on the store; a
 * change with an event id the store has seen for that vote is not applied or logged twice.
 * Without `at` the store's clock stamps it on arrival.
 */
export type Ballot = Omit<Vote, "at"> & { source?: string; at?: string; eventId?: string };

/** One rater's answer to one generation: a score per dimension, recorded together. */
export interface Answer {
  generationId: string;
  rater: string;
  /** At least one dimension. */
  scores: Partial<Record<Dimension, number>>;
  source?: string;
  /** When it was given (ISO 8601 UTC); default: when the store receives it. */
  at?: string;
  /**
   * The answer's id, when the sender has one: a redelivery of it is recognised (as castVote's
   * event id; each dimension's event carries `<eventId>/<dimension>`). Needs `at`.
   */
  eventId?: string;
}

/** One posted image message, for reconciliation (VoteStore.postedMessages). */
export interface PostedMessage {
  platform: string;
  messageRef: string;
  generation: Generation;
}

/** Which posted messages VoteStore.postedMessages lists (the union of both filters). */
export interface PostedMessagesQuery {
  platform: string;
  /** Messages whose generation was created at or after this time (for example 7 days ago). */
  since?: Date;
  /** Messages of these studies' generations, however old (the open studies). */
  studyIds?: readonly string[];
}

/**
 * Generations and votes, durable. One current vote per (generation, rater, dimension), stored
 * under its own key so concurrent votes by different people never overwrite each other.
 *
 * @example
 * await store.castVote({ generationId, rater: "discord:123", dimension: "quality", score: 3 });
 * // a second reaction in the same dimension replaces it:
 * await store.castVote({ generationId, rater: "discord:123", dimension: "quality", score: 4 });
 * // removing the reaction of the OLD score (the bot cleaning up) does not retract the new vote:
 * await store.retractVote({ generationId, rater: "discord:123", dimension: "quality", score: 3 }); // → undefined
 */
export interface VoteStore extends GenerationStore {
  getGeneration(id: string): Promise<Generation | undefined>;
  /** The generation posted as this platform message (adapters map reactions through it). */
  findGenerationByMessage(platform: string, messageRef: string): Promise<Generation | undefined>;
  /** Records where a generation was posted, once the adapter knows. */
  setMessageRef(generationId: string, messageRef: string): Promise<void>;
  /**
   * Adds or replaces the rater's vote on that dimension unless a later change (by `at`, then
   * event id) is already stored; returns the change's event (for a redelivered event id, the
   * one logged before, as it reads now). Atomic across processes on the store.
   */
  castVote(vote: Ballot): Promise<VoteEvent>;
  /**
   * Retracts the rater's vote on that dimension if its current score is `score`; returns the
   * event, or undefined when there was nothing to retract.
   */
  retractVote(vote: Ballot): Promise<VoteEvent | undefined>;
  /**
   * Records a rater's answer: casts each dimension as castVote would, all of them in one atomic
   * step (another process sees both dimensions' votes or neither). Without `at` (received now)
   * a dimension whose current vote already has that score is left alone; with an event id a
   * redelivered answer changes nothing. Returns the events of the dimensions that changed (in
   * DIMENSIONS order), so an answer sent again is recorded once.
   */
  castAnswer(answer: Answer): Promise<VoteEvent[]>;
  /**
   * Claims `key` for `ttlMs` milliseconds: true for the first claim, false for every other one
   * until the claim expires (then the key can be claimed again). Atomic across processes that
   * share the store (Redis SET NX PX; SQL INSERT … ON CONFLICT). For dedupe that must survive a
   * restart: Slack event ids, replayed signed requests.
   *
   * @example
   * if (!(await store.claimOnce(`slack-event:${body.event_id}`, 60 * 60_000))) return; // a retry
   */
  claimOnce(key: string, ttlMs: number): Promise<boolean>;
  votesOf(generationId: string): Promise<Vote[]>;
  /** All current votes of a study's generations, streamed, with the arm (server-side only). */
  studyVotes(studyId: string): AsyncIterable<Vote & { arm: string }>;
  /** The event log, oldest first. */
  events(): AsyncIterable<VoteEvent>;
  /**
   * The posted image messages of one platform that reconciliation should look at: those whose
   * generation was created since `since`, plus every one of the given studies, each once.
   * Generations whose messageRef was set before this index existed are found only through
   * their study.
   */
  postedMessages(query: PostedMessagesQuery): AsyncIterable<PostedMessage>;
  close(): Promise<void>;
}
