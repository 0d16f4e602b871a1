/**
 * What `imagine-bot serve` builds once and hands to every chat adapter, and what an adapter
 * hands back so that serve can shut it down.
 */
import type { CommandContext, Invocation } from "../../commands/command.js";
import type { Config } from "../../core/config.js";
import type { ImagineProgress, ImagineResult, Pipeline } from "../../core/pipeline.js";
import type { PromptArms } from "../../core/prompt/arms.js";
import type { StudyManager } from "../../core/study/manager.js";
import type { WebSettings } from "../../core/study/webSettings.js";
import type { Logger, VoteStore } from "../../core/types.js";
import type { AnyCommand } from "./commands.js";
import type { PostedMessage } from "./platform.js";

export interface ChatServices {
  config: Config;
  logger: Logger;
  arms: PromptArms;
  pipeline: Pipeline;
  /** serve always opens one; optional so that tests can leave votes out. */
  votes?: VoteStore;
  /** Studies (study, stats and export commands). */
  studies?: StudyManager;
  /** Web survey links (study invite), when IMAGINE_WEB_SECRET is set. */
  web?: WebSettings;
  /** The commands to offer (CHAT_COMMANDS unless a test narrows them). */
  commands: readonly AnyCommand[];
}

/** What a platform-neutral command gets when a chat adapter runs it: the shared services. */
export function commandContext(
  services: ChatServices,
  logger: Logger,
  invocation: Invocation,
  onProgress?: (event: ImagineProgress) => void,
): CommandContext {
  return {
    config: services.config,
    arms: services.arms,
    logger,
    pipeline: services.pipeline,
    ...(services.votes ? { votes: services.votes } : {}),
    ...(services.studies ? { studies: services.studies } : {}),
    ...(services.web ? { web: services.web } : {}),
    invocation,
    ...(onProgress ? { onProgress } : {}),
  };
}

/** A started chat adapter. */
export interface RunningAdapter {
  readonly name: string;
  /** Refuse new commands from now on ("shutting down"); work already accepted continues. */
  stopAccepting(): void;
  /** Resolves when every accepted command has replied (success, refusal or failure). */
  drain(): Promise<void>;
  /** Disconnects from the platform. */
  close(): Promise<void>;
  /**
   * Batch studies (see studyPoster.ts): whether this adapter posts to `channel`, a channel id
   * as its platform writes it (Discord: a channel of a server the bot is in; Slack: C…/G… ids).
   */
  ownsChannel?(channel: string): boolean;
  /**
   * Posts an imagine result into `channel` as ordinary bot messages, recorded for votes and
   * given the voting reactions, exactly like /imagine's images.
   */
  postResult?(channel: string, result: ImagineResult): Promise<PostedMessage[]>;
  /**
   * Posts the failure of an imagine command another process took as a new message in `channel`
   * (ChatFlow.publishFailure), once its reply window has closed; undefined when it cannot.
   */
  postFailure?(channel: string, error: unknown): Promise<PostedMessage | undefined>;
  /**
   * Answers an imagine command another process took, through its reply handle, with its images
   * or its failure (ChatFlow.publishResumed); undefined when the platform's window has closed.
   */
  resumeReply?(
    handle: string,
    outcome: { result: ImagineResult } | { error: unknown },
    requester: string,
  ): Promise<PostedMessage[] | undefined>;
}

/** One entry per chat platform in serve's list of adapters. */
export interface AdapterStarter {
  readonly name: string;
  /** The environment variables that enable it, for the "nothing to serve" message. */
  readonly credentials: string;
  /** The environment variables holding its secrets: their values are masked in every log line. */
  readonly secretVariables: readonly string[];
  /** Whether its credentials are set. */
  configured(env: NodeJS.ProcessEnv): boolean;
  start(services: ChatServices, env: NodeJS.ProcessEnv): Promise<RunningAdapter>;
}

/** Tracks promises of accepted work so that drain() can wait for them. */
export class InFlight {
  private readonly pending = new Set<Promise<unknown>>();

  track<T>(promise: Promise<T>): Promise<T> {
    this.pending.add(promise);
    void promise.then(
      () => this.pending.delete(promise),
      () => this.pending.delete(promise),
    );
    return promise;
  }

  get size(): number {
    return this.pending.size;
  }

  async drain(): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }
}
