/**
 * `imagine-bot doctor [--json]`: checks a deployment end to end and says, one line per check,
 * what is wrong and how to fix it — configuration, data directory and free space, every arm's
 * model (loaded and warmed, with the time it took), the image backend's health call, the vote
 * store, and the credentials of each chat platform that is configured (one cheap authenticated
 * call each), and the web survey's settings. Exit 0 only when nothing failed; skipped checks
 * (a platform that is not configured) do not fail.
 */
import { randomBytes } from "node:crypto";
import { mkdir, rm, statfs, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Command } from "commander";
import { type App, openApp } from "../../app/index.js";
import { configuredBackends, hasBackendList } from "../../core/image/backends.js";
import { checkImageBackend } from "../../core/image/health.js";
import { createLogger } from "../../core/logger.js";
import { readWebSettings, WEB_SECRET_VARIABLE } from "../../core/study/webSettings.js";
import { checkDiscordToken } from "../discord/health.js";
import { discordConfigured, discordSettings } from "../discord/settings.js";
import { checkSlackToken } from "../slack/health.js";
import { readSlackSettings, slackConfigured } from "../slack/settings.js";
import { CommandExit } from "./parse.js";

export interface DoctorCheck {
  name: string;
  state: "ok" | "fail" | "skip";
  detail: string;
  ms: number;
}

/** Less free space than this in the data directory fails the check (images and the store grow). */
export const MIN_FREE_BYTES = 512 * 1024 ** 2;

export async function runDoctor(env: NodeJS.ProcessEnv = process.env): Promise<DoctorCheck[]> {
  const checks: DoctorCheck[] = [];
  const check: Check = async (name, run) => {
    const started = performance.now();
    try {
      const outcome = await run();
      const ms = Math.round(performance.now() - started);
      checks.push(
        typeof outcome === "string"
          ? { name, state: "ok", detail: outcome, ms }
          : { name, state: "skip", detail: outcome.skip, ms },
      );
    } catch (error) {
      const detail = error instanceof Error ? error.message : String(error);
      checks.push({ name, state: "fail", detail, ms: Math.round(performance.now() - started) });
    }
  };

  // What is checked is opened the way serve opens it: through the composition root.
  let app: App | undefined;
  await check("configuration", async () => {
    app = openApp({ env, logger: createLogger({ level: "silent" }) });
    const file = env.IMAGINE_CONFIG?.trim();
    return `valid (config/default.json${file ? ` + ${file}` : ""} + environment)`;
  });
  if (app === undefined) return checks;
  try {
    await checkOpened(app, env, check);
  } finally {
    await app.close();
  }
  return checks;
}

type Check = (name: string, run: () => Promise<string | { skip: string }>) => Promise<void>;

async function checkOpened(app: App, env: NodeJS.ProcessEnv, check: Check): Promise<void> {
  const { config, secrets, arms } = app;

  await check("data directory", async () => {
    await mkdir(config.dataDir, { recursive: true });
    const probe = join(config.dataDir, `.doctor-${randomBytes(4).toString("hex")}`);
    await writeFile(probe, "");
    await rm(probe);
    const fs = await statfs(config.dataDir);
    const free = fs.bavail * fs.bsize;
    const gb = (free / 1024 ** 3).toFixed(1);
    if (free < MIN_FREE_BYTES) {
      throw new Error(`${config.dataDir}: only ${gb} GB free; free space or set IMAGINE_DATA_DIR`);
    }
    return `${config.dataDir} writable, ${gb} GB free`;
  });

  for (const name of arms.names) {
    await check(`arm ${name}`, async () => {
      const [warmed] = await arms.warm([name]);
      const arm = config.arms[name];
      const where =
        arm?.kind === "remote" ? `remote ${arm.model}` : (arm?.modelDir ?? "pulled (models pull)");
      return `${where} loads and writes (${warmed?.ms ?? 0} ms)`;
    });
  }

  if (hasBackendList(config)) {
    // One line per backend of image.backends, each with its own health call.
    for (const backend of configuredBackends(config, secrets)) {
      await check(`image backend ${backend.name}`, async () => {
        const health = await checkImageBackend(backend.config, secrets);
        return `${health.backend}: ${health.detail} (concurrency ${backend.concurrency}, weight ${backend.weight})`;
      });
    }
  } else {
    await check("image backend", async () => {
      const health = await checkImageBackend(config, secrets);
      return `${health.backend}: ${health.detail}`;
    });
  }

  await check("vote store", async () => {
    await app.votes();
    return `${config.votes.storeUrl.replace(/\/\/[^@/]*@/, "//…@")} opens`;
  });

  await check("discord", async () => {
    if (!discordConfigured(env)) return { skip: "DISCORD_TOKEN not set" };
    return checkDiscordToken(discordSettings(env));
  });
  await check("slack", async () => {
    if (!slackConfigured(env)) return { skip: "SLACK_BOT_TOKEN not set" };
    return checkSlackToken(readSlackSettings(env));
  });
  await check("web survey", async () => {
    if (!env[WEB_SECRET_VARIABLE]?.trim()) return { skip: `${WEB_SECRET_VARIABLE} not set` };
    const web = readWebSettings(env);
    return `links under ${web.publicUrl ?? `http://${web.host}:${web.port}`}`;
  });
}

export function formatChecks(checks: readonly DoctorCheck[]): string {
  const width = Math.max(...checks.map((c) => c.name.length));
  // A multi-line detail (a configuration error lists every problem) stays in its column.
  const indent = " ".repeat(4 + 2 + width + 2);
  const lines = checks.map(
    (c) =>
      `${c.state.padEnd(4)}  ${c.name.padEnd(width)}  ${c.detail.split("\n").join(`\n${indent}`)}`,
  );
  const failed = checks.filter((c) => c.state === "fail").length;
  lines.push(failed === 0 ? "every check passed" : `${failed} check(s) failed`);
  return `${lines.join("\n")}\n`;
}

export function registerDoctorCommand(program: Command): Command {
  return program
    .command("doctor")
    .description(
      "Check the configuration end to end: arms, image backend, vote store, chat credentials.\n" +
        "One line per check; exit 0 only when none failed.",
    )
    .option("--json", 'print {"ok","checks":[{"name","state","detail","ms"}]}')
    .action(async (flags: { json?: boolean }) => {
      const checks = await runDoctor();
      const ok = checks.every((c) => c.state !== "fail");
      process.stdout.write(
        flags.json ? `${JSON.stringify({ ok, checks })}\n` : formatChecks(checks),
      );
      if (!ok) throw new CommandExit(1);
    });
}
