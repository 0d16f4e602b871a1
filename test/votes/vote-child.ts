/**
 * One bot process applying votes (processes.test.ts): opens the vote store at VOTE_STORE_URL
 * HANDLES times (a process with several connections, as a sharded bot has), says "ready", waits
 * for "go" on stdin (so that every process starts at once), applies the changes given in CHANGES
 * (JSON) to TARGET (JSON), dealt round-robin to its handles, each handle one after the other;
 * closes and exits 0.
 *
 *   node --import tsx test/votes/vote-child.ts
 */
import { once } from "node:events";
import { openVoteStore } from "../../src/core/votes/index.js";
import { applyConflict, type Conflict } from "./conflicts.js";

const url = process.env.VOTE_STORE_URL;
if (!url) throw new Error("vote-child: VOTE_STORE_URL is not set");
const changes = JSON.parse(process.env.CHANGES ?? "[]") as Conflict[];
const target = JSON.parse(process.env.TARGET ?? "{}") as Parameters<typeof applyConflict>[2];

const handles = await Promise.all(
  Array.from({ length: Number(process.env.HANDLES ?? "1") }, () =>
    openVoteStore(url, { dataDir: "/nonexistent" }),
  ),
);
process.stdout.write("ready\n");
process.stdin.setEncoding("utf8");
let input = "";
while (!input.includes("go\n")) {
  const [chunk] = (await once(process.stdin, "data")) as [string];
  input += chunk;
}
await Promise.all(
  handles.map(async (store, h) => {
    for (const change of changes.filter((_, i) => i % handles.length === h)) {
      await applyConflict(store, change, target);
    }
  }),
);
await Promise.all(handles.map((store) => store.close()));
process.stdout.write("done\n");
process.exit(0);
