/**
 * `imagine-bot serve` in a child process, for the kill -9 drill (drill.test.ts): the real serve
 * path (startServe: configuration from the environment, the SQLite vote store, every configured
 * adapter) with an in-test image backend. Prints one JSON line when every adapter's start
 * reconciliation has finished, one per reaction event handled after that, and one per later
 * reconciliation; a line on stdin shuts it down cleanly.
 *
 *   node --import tsx test/chat/serve-child.ts   (DISCORD_* or SLACK_*, IMAGINE_* set)
 */
import type { ChatFlow, ReactionReport, ReconcileReport } from "../../src/adapters/chat/flow.js";
import { startServe } from "../../src/adapters/cli/serve.js";
import { FakeBackend } from "../pipeline/fakes.js";

function line(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

function summaryOf(report: ReconcileReport | undefined) {
  if (!report) return undefined;
  const { failed, ...counts } = report.summary;
  return { reason: report.reason, ...counts, failed: failed.length, ms: report.ms };
}

const handle = await startServe({ backend: new FakeBackend() });
const flows = handle.adapters.map((adapter) => (adapter as unknown as { flow: ChatFlow }).flow);
const started = await Promise.all(flows.map((flow) => flow.reconciliation));
line({ ready: true, reconciled: started.map(summaryOf) });
for (const flow of flows) {
  flow.events.on("reconcile", (report: ReconcileReport) => line({ reconcile: summaryOf(report) }));
  flow.events.on("reaction", (report: ReactionReport) => line({ reaction: report.outcome.kind }));
}
// A line on stdin asks for the clean shutdown that SIGTERM gives `imagine-bot serve`.
process.stdin.once("data", () => {
  void handle.shutdown("stop requested").then(() => process.exit(0));
});
