/**
 * A web server's vote writer that gets killed (answer-kill.test.ts): opens the SQLite vote store
 * at VOTE_STORE_URL and records answers to GENERATION_ID, IN_FLIGHT at a time, rater
 * `web:r<i>` with the scores of answerScores(i), writing "ack <i>" once each is acknowledged;
 * it never stops by itself.
 *
 *   node --import tsx test/votes/answer-child.ts
 */
import { openVoteStore } from "../../src/core/votes/index.js";
import { answerScores } from "./answer-scores.js";

const url = process.env.VOTE_STORE_URL;
const generationId = process.env.GENERATION_ID;
if (!url || !generationId)
  throw new Error("answer-child: VOTE_STORE_URL and GENERATION_ID are needed");
const store = await openVoteStore(url, { dataDir: "/nonexistent" });
let next = 0;
await Promise.all(
  Array.from({ length: Number(process.env.IN_FLIGHT ?? "4") }, async () => {
    for (;;) {
      const i = next++;
      await store.castAnswer({
        generationId,
        rater: `web:r${i}`,
        scores: answerScores(i),
        source: "web",
      });
      process.stdout.write(`ack ${i}\n`);
    }
  }),
);
