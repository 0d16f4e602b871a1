/**
 * `imagine-bot web` (the web survey and results pages on their own) and the link commands
 * `imagine-bot study invite <study> --rater NAME [--survey N] [--expires 14d]`,
 * `imagine-bot study invite <study> --admin` and `imagine-bot study revoke <study> --rater NAME | --link ID`.
 * Settings come from IMAGINE_WEB_* (see src/adapters/web/settings.ts).
 */
import { type Command, Option } from "commander";
import { openApp } from "../../app/index.js";
import { loadConfig } from "../../core/config.js";
import { UserError } from "../../core/errors.js";
import { RevocationList } from "../../core/study/invite.js";
import { makeStudyLink } from "../../core/study/links.js";
import { StudyManager } from "../../core/study/manager.js";
import { readWebSettings } from "../../core/study/webSettings.js";
import { startWebServer } from "../web/server.js";
import { integer } from "./parse.js";

export interface WebCliOptions {
  env?: NodeJS.ProcessEnv;
  write?: (text: string) => void;
  /** Resolves when `imagine-bot web` should stop (default: SIGINT or SIGTERM). */
  stopSignal?: () => Promise<void>;
}

export function registerWebCommands(program: Command, options: WebCliOptions = {}): void {
  const env = options.env ?? process.env;
  const write = options.write ?? ((text: string) => process.stdout.write(text));

  program
    .command("web")
    .description(
      "Serve the web survey (rater links) and the admin results page on their own.\n" +
        "Settings: IMAGINE_WEB_SECRET (required), IMAGINE_WEB_HOST (127.0.0.1), IMAGINE_WEB_PORT (8787), IMAGINE_WEB_URL",
    )
    .action(async () => {
      const settings = readWebSettings(env);
      const app = openApp({ env, secretVariables: ["IMAGINE_WEB_SECRET"] });
      const { config, logger } = app;
      try {
        const votes = await app.votes();
        const studies = app.studies();
        const server = await startWebServer({
          settings,
          dataDir: config.dataDir,
          votes,
          studies,
          logger,
        });
        process.stderr.write(
          `web survey listening on ${server.url} (links under ${server.publicUrl})\n`,
        );
        await (options.stopSignal ?? untilSignal)();
        await server.close();
      } finally {
        await app.close();
      }
    });

  const study = program.commands.find((command) => command.name() === "study");
  if (study === undefined) throw new Error("register the study commands before the web ones");

  study
    .command("invite")
    .description(
      "Print a signed, expiring link: a rater's survey of a batch study, or (--admin) its progress and results page",
    )
    .argument("<id>", "the study id")
    .option("--rater <name>", "the rater's name (votes are stored as web:<name>)")
    .option(
      "--survey <n>",
      "which survey of the plan (needed when it has several)",
      integer(1, 1000),
    )
    .option("--expires <duration>", "how long the link works: 90m, 12h, 14d, 2w", "14d")
    .addOption(new Option("--admin", "an admin link to the results page").conflicts("survey"))
    .option("--json", 'print {"url","link","study","rater","survey","expiresAt"}')
    .action(
      async (
        id: string,
        flags: {
          rater?: string;
          survey?: number;
          expires: string;
          admin?: boolean;
          json?: boolean;
        },
      ) => {
        const settings = readWebSettings(env);
        const { config } = loadConfig(env);
        const studies = new StudyManager({ dataDir: config.dataDir });
        if (!flags.admin && flags.rater === undefined) {
          throw new UserError("USAGE", "study invite needs --rater NAME (or --admin)");
        }
        const { url, invite } = await makeStudyLink(studies, settings, {
          studyId: id,
          expires: flags.expires,
          ...(flags.rater === undefined ? {} : { rater: flags.rater }),
          ...(flags.survey === undefined ? {} : { survey: flags.survey }),
          ...(flags.admin ? { admin: true } : {}),
        });
        const { rater, survey, studyId } = invite;
        if (flags.json) {
          write(
            `${JSON.stringify({ url, link: invite.id, study: studyId, rater, survey, expiresAt: invite.expiresAt.toISOString() })}\n`,
          );
        } else {
          write(
            `${url}\n# ${flags.admin ? "admin" : `rater web:${rater}, survey ${survey}`}, link ${invite.id}, expires ${invite.expiresAt.toISOString()}\n`,
          );
        }
      },
    );

  study
    .command("revoke")
    .description(
      "Withdraw web links: one link by its id, or every link of a rater for the study so far",
    )
    .argument("<id>", "the study id")
    .addOption(new Option("--rater <name>", "every link of this rater for the study"))
    .addOption(
      new Option("--link <linkId>", "one link (as printed by study invite)").conflicts("rater"),
    )
    .action(async (id: string, flags: { rater?: string; link?: string }) => {
      const { config } = loadConfig(env);
      await new StudyManager({ dataDir: config.dataDir }).require(id);
      if (flags.rater === undefined && flags.link === undefined) {
        throw new UserError("USAGE", "study revoke needs --rater NAME or --link ID");
      }
      const revocations = new RevocationList(config.dataDir);
      await revocations.revoke(
        flags.link !== undefined
          ? { link: flags.link }
          : { studyId: id, rater: flags.rater as string },
      );
      write(
        flags.link !== undefined
          ? `revoked link ${flags.link}\n`
          : `revoked every link of ${flags.rater} for study ${id} issued until now\n`,
      );
    });
}

/** Resolves at the first SIGINT or SIGTERM (the long-running commands stop on either). */
export function untilSignal(): Promise<void> {
  return new Promise((resolve) => {
    const stop = () => {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
      resolve();
    };
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
}
