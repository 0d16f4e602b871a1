import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InviteRejected, RevocationList, verifyInvite } from "../../src/core/study/invite.js";
import { StudyManager } from "../../src/core/study/manager.js";
import { makeStudyPlan } from "../../src/core/study/plan.js";
import { ROOT, runCli, testProcessEnv } from "../helpers/cli.js";

const SECRET = "cli-test-secret-0123456789abcdef-0123456789";
const dataDir = mkdtempSync(join(tmpdir(), "imagine-web-cli-"));
const env = {
  IMAGINE_DATA_DIR: dataDir,
  IMAGINE_VOTE_STORE: "memory://",
  IMAGINE_WEB_SECRET: SECRET,
  IMAGINE_WEB_URL: "https://survey.example.org/",
};
let batch = "";
let live = "";

beforeAll(async () => {
  const studies = new StudyManager({ dataDir });
  const plan = makeStudyPlan({
    concepts: ["a", "b"],
    promptsPerConcept: 2,
    arms: ["x", "y"],
    surveys: 2,
    seed: 1,
  });
  batch = (await studies.start({ mode: "batch", name: "cli web", arms: ["x", "y"], plan })).id;
  live = (await studies.start({ mode: "live", name: "live", arms: ["x", "y"], channels: ["c9"] }))
    .id;
});
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

describe("imagine-bot study invite / revoke / web", () => {
  it("prints a verifiable rater link under the public URL, and revokes it", async () => {
    const { code, stdout, stderr } = await runCli(
      ["study", "invite", batch, "--rater", "alice", "--survey", "2", "--expires", "3d", "--json"],
      env,
    );
    expect(stderr).toBe("");
    expect(code).toBe(0);
    const printed = JSON.parse(stdout);
    expect(printed.url).toMatch(/^https:\/\/survey\.example\.org\/s\/v1\./);
    const invite = await verifyInvite(SECRET, printed.url.split("/s/")[1]);
    expect(invite).toMatchObject({
      role: "rater",
      studyId: batch,
      rater: "alice",
      survey: 2,
      id: printed.link,
    });
    expect(invite.expiresAt.getTime() - invite.issuedAt.getTime()).toBe(3 * 86_400_000);

    const revoked = await runCli(["study", "revoke", batch, "--link", printed.link], env);
    expect(revoked.code).toBe(0);
    await expect(
      verifyInvite(SECRET, printed.url.split("/s/")[1], {
        revocations: new RevocationList(dataDir),
      }),
    ).rejects.toBeInstanceOf(InviteRejected);

    const admin = await runCli(["study", "invite", batch, "--admin"], env);
    expect(admin.code).toBe(0);
    expect(admin.stdout).toMatch(
      /^https:\/\/survey\.example\.org\/admin\/v1\.\S+\n# admin, link [0-9a-f]{16}/,
    );
  });

  it("explains bad invites with exit code 2 (the other checks are unit-tested)", {
    timeout: 120_000,
  }, async () => {
    const cases: [string[], Record<string, string>, RegExp][] = [
      [
        ["study", "invite", batch, "--rater", "bob", "--survey", "1"],
        { ...env, IMAGINE_WEB_SECRET: "" },
        /IMAGINE_WEB_SECRET is not set/,
      ],
      [
        ["study", "invite", batch, "--rater", "bob", "--survey", "1"],
        { ...env, IMAGINE_WEB_SECRET: "short" },
        /IMAGINE_WEB_SECRET is too short/,
      ],
      [["study", "invite", batch, "--rater", "bob"], env, /has 2 surveys: say which with --survey/],
      [
        ["study", "invite", batch, "--rater", "bob", "--survey", "1", "--expires", "forever"],
        env,
        /not a duration/,
      ],
      [["study", "invite", live, "--rater", "bob"], env, /live study: it is rated in chat/],
      [
        ["study", "invite", batch, "--rater", "bob", "--survey", "1"],
        { ...env, IMAGINE_WEB_URL: "ftp://x" },
        /IMAGINE_WEB_URL must start with https/,
      ],
      [["study", "revoke", batch], env, /needs --rater NAME or --link ID/],
    ];
    for (const [args, caseEnv, message] of cases) {
      const result = await runCli(args, caseEnv);
      expect(result.stderr, args.join(" ")).toMatch(message);
      expect(result.code, args.join(" ")).toBe(2);
    }
  });

  it("`imagine-bot web` serves on 127.0.0.1 until SIGTERM", async () => {
    const child = spawn(
      process.execPath,
      ["--import", "tsx", resolve(ROOT, "src/adapters/cli/main.ts"), "web"],
      {
        cwd: ROOT,
        env: { ...testProcessEnv(), IMAGINE_LOG_LEVEL: "silent", ...env, IMAGINE_WEB_PORT: "0" },
      },
    );
    let stderr = "";
    const url = await new Promise<string>((done, fail) => {
      child.stderr.on("data", (chunk: Buffer) => {
        stderr += chunk.toString();
        const match = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(stderr);
        if (match) done(match[1] as string);
      });
      child.once("exit", (code) => fail(new Error(`web exited with ${code}: ${stderr}`)));
    });
    const health = await fetch(`${url}/healthz`);
    expect(await health.text()).toBe("ok");
    expect((await fetch(`${url}/s/forged`)).status).toBe(403);
    const exited = new Promise<number | null>((done) => child.once("exit", (code) => done(code)));
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
  });
});
