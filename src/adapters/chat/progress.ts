/**
 * A command's public progress line: pipeline events become status() calls on the conversation,
 * one at a time and in order, starting once the flow has begun the public reply. Consecutive
 * queue positions (and render steps) collapse into the latest, so a burst of them costs one edit.
 */
import type { ImagineProgress } from "../../core/pipeline.js";
import type { Logger } from "../../core/types.js";
import type { Conversation } from "./platform.js";
import { progressText } from "./replies.js";

export class ProgressLine {
  private readonly pending: { kind: ImagineProgress["kind"]; text: string }[] = [];
  private pumping: Promise<void> | undefined;
  private shown: string | undefined;
  private started = false;
  private finished = false;

  constructor(
    private readonly conversation: Conversation,
    private readonly log: Logger,
  ) {}

  show(event: ImagineProgress): void {
    if (this.finished) return;
    const text = progressText(event);
    if (text === undefined) return;
    const last = this.pending.at(-1);
    // Per-step render lines collapse the same way: a slow chat edit shows the latest step.
    if (last && last.kind === event.kind && (event.kind === "queued" || event.kind === "rendering"))
      last.text = text;
    else this.pending.push({ kind: event.kind, text });
    this.pump();
  }

  /** The public reply has begun: lines due are shown from now on. */
  start(): void {
    this.started = true;
    this.pump();
  }

  /** No more lines; resolves once the lines already being shown are done (the result comes last). */
  async finish(): Promise<void> {
    while (this.pumping) await this.pumping;
    this.finished = true;
  }

  private pump(): void {
    if (!this.started || this.pumping || this.finished) return;
    const run = async () => {
      for (let next = this.pending.shift(); next; next = this.pending.shift()) {
        if (this.finished) break;
        if (next.text === this.shown) continue;
        try {
          await this.conversation.status(next.text);
          this.shown = next.text;
        } catch (error) {
          this.log.warn({ err: error }, "progress not shown");
        }
      }
    };
    // .finally runs after the assignment below, even when run() had nothing to await.
    const pumping: Promise<void> = run().finally(() => {
      if (this.pumping === pumping) this.pumping = undefined;
      if (this.pending.length > 0) this.pump();
    });
    this.pumping = pumping;
  }
}
