/**
 * The web survey's settings (rater links and the server that answers them), from the
 * environment, since the secret must never sit in a config file:
 *   IMAGINE_WEB_SECRET  the HMAC secret for links (≥ 32 bytes; required)
 *   IMAGINE_WEB_HOST    the address to bind (default 127.0.0.1: put a TLS proxy in front)
 *   IMAGINE_WEB_PORT    the port (default 8787; 0 picks a free one)
 *   IMAGINE_WEB_URL     the public base URL printed in links (default http://HOST:PORT)
 * Every error names the variable to fix.
 */
import { isIP } from "node:net";
import { UserError } from "../errors.js";
import { checkWebSecret } from "./invite.js";

export const WEB_SECRET_VARIABLE = "IMAGINE_WEB_SECRET";
export const DEFAULT_WEB_PORT = 8787;

export interface WebSettings {
  secret: string;
  host: string;
  port: number;
  /** Where people reach the server (no trailing slash); links are printed under it. */
  publicUrl?: string;
}

export function readWebSettings(env: NodeJS.ProcessEnv = process.env): WebSettings {
  const secret = checkWebSecret(env[WEB_SECRET_VARIABLE], WEB_SECRET_VARIABLE);
  const host = env.IMAGINE_WEB_HOST?.trim() || "127.0.0.1";
  if (isIP(host) === 0 && host !== "localhost") {
    throw new UserError(
      "USAGE",
      `IMAGINE_WEB_HOST must be an IP address to bind (e.g. 127.0.0.1 or 0.0.0.0), not "${host}"`,
    );
  }
  const portText = env.IMAGINE_WEB_PORT?.trim();
  const port = portText ? Number(portText) : DEFAULT_WEB_PORT;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new UserError(
      "USAGE",
      `IMAGINE_WEB_PORT must be a port number from 0 to 65535, not "${portText}"`,
    );
  }
  const publicUrl = env.IMAGINE_WEB_URL?.trim();
  return { secret, host, port, ...(publicUrl ? { publicUrl: checkPublicUrl(publicUrl) } : {}) };
}

export function checkPublicUrl(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UserError("USAGE", `IMAGINE_WEB_URL is not a URL: "${text}"`);
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    throw new UserError("USAGE", `IMAGINE_WEB_URL must start with https:// (or http://)`);
  }
  if (url.search !== "" || url.hash !== "") {
    throw new UserError("USAGE", "IMAGINE_WEB_URL must not have a query or fragment");
  }
  return url.href.replace(/\/+$/, "");
}
