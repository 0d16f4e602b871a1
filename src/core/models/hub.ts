/**
 * The few Hugging Face Hub HTTP calls a model pull needs, on Node's fetch.
 *
 * API shapes, as huggingface.js (`packages/hub/src/lib/model-info.ts`, `list-files.ts`,
 * `types/api/api-index-tree.ts`) and huggingface_hub (`utils/_http.py`) use them:
 * - `GET {endpoint}/api/models/{repo}/revision/{rev}` → `{ id, sha, siblings: [{ rfilename }] }`;
 *   `sha` is the commit the revision (branch, tag or commit) points at.
 * - `GET {endpoint}/api/models/{repo}/tree/{rev}?recursive=true` → an array of
 *   `{ type: "file" | "directory", path, size, oid, lfs?: { oid, size, pointerSize } }`, paged
 *   with a `Link: <…>; rel="next"` header. `oid` is the git blob id (SHA-1 of
 *   `"blob {size}\0" + content`); for LFS (and Xet-backed) files `lfs.oid` is the SHA-256 of the
 *   content and `lfs.size` its size.
 * - `GET {endpoint}/{repo}/resolve/{rev}/{path}` → the bytes (LFS files by a redirect to a CDN,
 *   which fetch follows); `Range: bytes=N-` is honoured with 206.
 * - Errors: 401 for a private or missing repository without a token, 403 for a gated one, 404;
 *   the `X-Error-Code` header (RepoNotFound, RevisionNotFound, EntryNotFound, GatedRepo) tells
 *   them apart.
 */
import { UserError } from "../errors.js";
import {
  isRetryableStatus,
  parseRetryAfter,
  RemoteCallError,
  type RetryOptions,
  withRetry,
  withTimeout,
} from "../retry.js";

export const DEFAULT_HUB_ENDPOINT = "https://huggingface.co";

/** One file of a repository at a commit. */
export interface HubFile {
  path: string;
  size: number;
  /** Git blob id (SHA-1 of "blob {size}\0" + content); checks non-LFS files. */
  gitOid?: string;
  /** SHA-256 of the content, for LFS and Xet-backed files. */
  sha256?: string;
}

export interface HubClientOptions {
  /** Base URL (HF_ENDPOINT), default https://huggingface.co. */
  endpoint?: string;
  /** Bearer token (HF_TOKEN) for gated and private repositories. */
  token?: string;
  /** Per API call (file downloads use an idle timeout instead). */
  apiTimeoutMs?: number;
  retry?: Pick<RetryOptions, "retries" | "baseDelayMs" | "maxDelayMs" | "sleep" | "onRetry">;
  signal?: AbortSignal;
  userAgent?: string;
}

export const DEFAULT_RETRY = { retries: 5, baseDelayMs: 500, maxDelayMs: 30_000 };

const REPO_ID = /^[A-Za-z0-9][A-Za-z0-9._-]*\/[A-Za-z0-9][A-Za-z0-9._-]*$/;

export function isRepoId(value: string): boolean {
  return REPO_ID.test(value) && !value.includes("..");
}

/** Each path segment encoded, slashes kept, as the resolve URLs expect. */
export function encodePath(path: string): string {
  return path.split("/").map(encodeURIComponent).join("/");
}

export class HubClient {
  readonly endpoint: string;
  private readonly token: string | undefined;
  private readonly apiTimeoutMs: number;
  readonly retry: RetryOptions;

  constructor(private readonly options: HubClientOptions = {}) {
    this.endpoint = (options.endpoint ?? DEFAULT_HUB_ENDPOINT).replace(/\/+$/, "");
    this.token = options.token;
    this.apiTimeoutMs = options.apiTimeoutMs ?? 30_000;
    this.retry = { ...DEFAULT_RETRY, ...options.retry, signal: options.signal };
  }

  get hasToken(): boolean {
    return this.token !== undefined;
  }

  headers(extra: Record<string, string> = {}): Record<string, string> {
    return {
      "user-agent": this.options.userAgent ?? "imagine-bot/0.1 (models pull)",
      ...(this.token ? { authorization: `Bearer ${this.token}` } : {}),
      ...extra,
    };
  }

  resolveUrl(repo: string, revision: string, path: string): string {
    return `${this.endpoint}/${repo}/resolve/${encodeURIComponent(revision)}/${encodePath(path)}`;
  }

  /** The commit a branch, tag or commit id points at. */
  async resolveRevision(repo: string, revision: string): Promise<string> {
    return (await this.revisionInfo(repo, revision)).sha;
  }

  /**
   * The commit a revision points at, and the licence the model card declares: `cardData.license`
   * (the card's YAML front matter) or else the `license:…` tag the Hub derives from it.
   */
  async revisionInfo(repo: string, revision: string): Promise<{ sha: string; license?: string }> {
    const url = `${this.endpoint}/api/models/${repo}/revision/${encodeURIComponent(revision)}`;
    const body = (await this.getJson(url, { repo, revision })) as {
      sha?: unknown;
      cardData?: { license?: unknown };
      tags?: unknown;
    } | null;
    const sha = body?.sha;
    if (typeof sha !== "string" || !/^[0-9a-f]{40}$/.test(sha)) {
      throw new RemoteCallError(`${url} answered without a commit id ("sha")`, {
        retryable: false,
      });
    }
    const fromCard = body?.cardData?.license;
    const fromTags = Array.isArray(body?.tags)
      ? (body.tags as unknown[]).find(
          (tag): tag is string => typeof tag === "string" && tag.startsWith("license:"),
        )
      : undefined;
    const license =
      typeof fromCard === "string" && fromCard.trim()
        ? fromCard.trim()
        : fromTags?.slice("license:".length);
    return license ? { sha, license } : { sha };
  }

  /** Every file of the repository at `commit`, following the tree listing's pages. */
  async listFiles(repo: string, commit: string): Promise<HubFile[]> {
    const files: HubFile[] = [];
    let url: string | undefined =
      `${this.endpoint}/api/models/${repo}/tree/${encodeURIComponent(commit)}?recursive=true`;
    for (let page = 0; url; page++) {
      if (page > 1000)
        throw new RemoteCallError(`${repo}: tree listing never ends`, { retryable: false });
      const { body, link } = await this.getJsonWithLink(url, { repo, revision: commit });
      if (!Array.isArray(body)) {
        throw new RemoteCallError(`${url} did not answer with a file list`, { retryable: false });
      }
      for (const entry of body as TreeEntry[]) {
        if (entry?.type !== "file" || typeof entry.path !== "string") continue;
        const size = entry.lfs?.size ?? entry.size;
        if (typeof size !== "number" || size < 0) continue;
        files.push({
          path: entry.path,
          size,
          ...(entry.lfs && typeof entry.lfs.oid === "string" ? { sha256: entry.lfs.oid } : {}),
          ...(!entry.lfs && typeof entry.oid === "string" ? { gitOid: entry.oid } : {}),
        });
      }
      url = nextLink(link, url);
    }
    return files;
  }

  private async getJson(url: string, what: ErrorContext): Promise<unknown> {
    return (await this.getJsonWithLink(url, what)).body;
  }

  private getJsonWithLink(
    url: string,
    what: ErrorContext,
  ): Promise<{ body: unknown; link: string | null }> {
    return withRetry(
      () =>
        withTimeout(
          async (signal) => {
            let response: Response;
            try {
              response = await fetch(url, {
                headers: this.headers({ accept: "application/json" }),
                signal,
              });
            } catch (error) {
              if (signal.aborted) throw error;
              throw unreachable(this.endpoint, error);
            }
            if (!response.ok) {
              await response.body?.cancel().catch(() => {});
              throw this.errorFor(response, what);
            }
            let body: unknown;
            try {
              body = await response.json();
            } catch (error) {
              throw new RemoteCallError(`${url} answered with invalid JSON`, {
                retryable: true,
                cause: error,
              });
            }
            return { body, link: response.headers.get("link") };
          },
          this.apiTimeoutMs,
          this.options.signal,
          `Hugging Face Hub call ${url}`,
        ),
      this.retry,
    );
  }

  /**
   * A failed response as an error: user-fixable ones (token, licence, wrong name) as UserError,
   * which is never retried; 408, 429 and 5xx as retryable RemoteCallError.
   */
  errorFor(response: Response, what: ErrorContext): Error {
    const { status } = response;
    const code = response.headers.get("x-error-code") ?? "";
    const { repo } = what;
    const page = `${this.endpoint}/${repo}`;
    if (code === "GatedRepo" || status === 403) {
      return new UserError(
        "REMOTE_FAILED",
        this.token
          ? `${repo} is gated or your token may not read it (HTTP ${status}): accept the model's licence at ${page} with the account whose token is in HF_TOKEN, or use a token with read access.`
          : `${repo} is gated (HTTP ${status}): accept the model's licence at ${page}, then set HF_TOKEN to a read token of that account (https://huggingface.co/settings/tokens).`,
      );
    }
    if (code === "RevisionNotFound") {
      return new UserError(
        "REMOTE_FAILED",
        `Revision "${what.revision}" not found in ${repo} (HTTP ${status}). Use a branch, tag or full commit id that exists there (see ${page}/tree/main).`,
      );
    }
    if (code === "EntryNotFound" && what.path) {
      return new UserError(
        "REMOTE_FAILED",
        `${repo} has no file ${what.path} at revision ${what.revision} (HTTP ${status}).`,
      );
    }
    if (status === 401) {
      return new UserError(
        "REMOTE_FAILED",
        this.token
          ? `HF_TOKEN was refused for ${repo} (HTTP 401): the token is invalid or expired, or the repository does not exist. Check the id and the token (https://huggingface.co/settings/tokens).`
          : `${repo} needs authentication or does not exist (HTTP 401). Check the repository id; if it is private or gated, set HF_TOKEN to a read token (https://huggingface.co/settings/tokens).`,
      );
    }
    if (status === 404) {
      return new UserError(
        "REMOTE_FAILED",
        code === "RepoNotFound" || !what.path
          ? `Repository ${repo}${code === "RepoNotFound" ? "" : ` or revision "${what.revision}"`} not found on ${this.endpoint} (HTTP 404). Check the id (owner/name)${this.token ? "" : "; a private repository needs HF_TOKEN"}.`
          : `${repo} has no file ${what.path} at revision ${what.revision} (HTTP 404).`,
      );
    }
    const retryAfterMs = parseRetryAfter(response.headers.get("retry-after"));
    return new RemoteCallError(
      `Hugging Face Hub answered HTTP ${status} for ${repo}${what.path ? ` ${what.path}` : ""}`,
      {
        status,
        retryable: isRetryableStatus(status),
        ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
      },
    );
  }
}

export interface ErrorContext {
  repo: string;
  revision: string;
  path?: string;
}

interface TreeEntry {
  type?: string;
  path?: string;
  size?: number;
  oid?: string;
  lfs?: { oid?: string; size?: number };
}

/** A transport failure (refused, reset, DNS) as a retryable error that names the endpoint. */
export function unreachable(endpoint: string, error: unknown): RemoteCallError {
  let cause = error as { code?: unknown; message?: unknown; cause?: unknown } | undefined;
  let detail = String(cause?.message ?? error);
  for (let depth = 0; cause && depth < 5; depth++) {
    if (typeof cause.code === "string") {
      detail = cause.code;
      break;
    }
    cause = cause.cause as typeof cause;
  }
  return new RemoteCallError(
    `Cannot reach the Hugging Face Hub at ${endpoint} (${detail}). Check the network, or HF_ENDPOINT if you use a mirror.`,
    { retryable: true, cause: error },
  );
}

/** The rel="next" target of a Link header (RFC 8288), resolved against the current URL. */
export function nextLink(header: string | null, base: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(",")) {
    const match = /<([^>]+)>\s*;(.*)$/.exec(part.trim());
    if (match && /rel\s*=\s*"?next"?/i.test(match[2] ?? "")) {
      return new URL(match[1] as string, base).toString();
    }
  }
  return undefined;
}
