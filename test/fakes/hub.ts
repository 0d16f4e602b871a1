/**
 * A fake Hugging Face Hub on 127.0.0.1 for `models pull`, speaking the shapes the real Hub does
 * (see src/core/models/hub.ts for the sources):
 * - GET /api/models/{owner}/{name}/revision/{rev} → { id, sha, siblings: [{ rfilename }], tags,
 *   cardData? } with `license:…` in tags and cardData.license when the repository declares one
 * - GET /api/models/{owner}/{name}/tree/{rev}?recursive=true → [{ type, oid, size, path, lfs? }],
 *   paged with a Link rel="next" header when pageSize is set
 * - GET /{owner}/{name}/resolve/{rev}/{path} → the bytes; LFS files by a 302 to /cdn/{sha256},
 *   as the Hub redirects to its CDN; Range: bytes=N- answered with 206 and Content-Range
 * Errors carry X-Error-Code (RepoNotFound, RevisionNotFound, EntryNotFound, GatedRepo).
 *
 * Faults are queued per file path and used once each, in order: cut a response after some bytes
 * (the socket is destroyed), corrupt a byte, ignore the Range header, or answer a status.
 */
import { createHash } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { closeServer, listenOnLoopback } from "./loopback.js";

export type HubFault =
  /** Sends the headers and this many bytes of the body, then destroys the socket. */
  | { kind: "cut"; afterBytes: number }
  /** Flips one byte of the body (the listing keeps the true hashes). */
  | { kind: "corrupt" }
  /** Answers 200 with the whole file even when a Range was asked for. */
  | { kind: "ignoreRange" }
  | { kind: "status"; status: number; headers?: Record<string, string> };

export interface RecordedHubRequest {
  method: string;
  path: string;
  headers: Record<string, string | string[] | undefined>;
}

interface FakeRepo {
  /** Branch or tag → commit. */
  refs: Map<string, string>;
  /** Commit → files. */
  commits: Map<string, Map<string, Buffer>>;
  /** Paths stored with LFS. */
  lfs: (path: string) => boolean;
  /** A token required to read it (private), or gated: 403 without the right token. */
  token?: string;
  gated?: boolean;
  /** The model card's licence (cardData.license and a `license:` tag). */
  license?: string;
}

export interface AddRepoOptions {
  /** Branch name; default main. */
  ref?: string;
  /** Paths stored with LFS; default *.onnx and files over 10 kB. */
  lfs?: (path: string, bytes: Buffer) => boolean;
  token?: string;
  gated?: boolean;
  license?: string;
}

export class FakeHub {
  readonly requests: RecordedHubRequest[] = [];
  /** Every time file bytes were sent (directly or from the CDN), with the Range asked for. */
  readonly served: { path: string; range: string | undefined; status: number }[] = [];
  /** Statuses the next API calls answer with, one each, before answering normally. */
  readonly apiFailures: number[] = [];
  private readonly repos = new Map<string, FakeRepo>();
  private readonly faults = new Map<string, HubFault[]>();
  private readonly server: Server = createServer((req, res) => {
    try {
      this.handle(req, res);
    } catch (error) {
      res.writeHead(500, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: String(error) }));
    }
  });
  private baseUrl = "";
  /** Tree listing entries per page; 0 = one page. */
  pageSize = 0;
  private commitCounter = 0;

  get url(): string {
    return this.baseUrl;
  }

  async start(): Promise<this> {
    this.baseUrl = await listenOnLoopback(this.server);
    return this;
  }

  async stop(): Promise<void> {
    await closeServer(this.server);
  }

  /** Adds (or pushes a new commit to) a repository; returns the commit id. */
  addRepo(
    id: string,
    files: Record<string, Buffer | string>,
    options: AddRepoOptions = {},
  ): string {
    const commit = createHash("sha1")
      .update(`${id}:${++this.commitCounter}`)
      .digest("hex");
    const contents = new Map(
      Object.entries(files).map(([path, value]) => [
        path,
        Buffer.isBuffer(value) ? value : Buffer.from(value),
      ]),
    );
    const lfs = options.lfs ?? ((path, bytes) => path.endsWith(".onnx") || bytes.length > 10_000);
    const existing = this.repos.get(id);
    const repo: FakeRepo = existing ?? {
      refs: new Map(),
      commits: new Map(),
      lfs: () => false,
    };
    repo.commits.set(commit, contents);
    repo.refs.set(options.ref ?? "main", commit);
    repo.lfs = (path) => {
      for (const files of repo.commits.values()) {
        const bytes = files.get(path);
        if (bytes) return lfs(path, bytes);
      }
      return false;
    };
    repo.token = options.token ?? existing?.token;
    repo.gated = options.gated ?? existing?.gated;
    repo.license = options.license ?? existing?.license;
    this.repos.set(id, repo);
    return commit;
  }

  /** Queues faults for downloads of `path` (any repository), used in order. */
  fault(path: string, ...faults: HubFault[]): void {
    this.faults.set(path, [...(this.faults.get(path) ?? []), ...faults]);
  }

  /** Requests to /resolve/ for `path`. */
  resolves(path: string): RecordedHubRequest[] {
    return this.requests.filter(
      (r) => r.path.includes("/resolve/") && decodeURIComponent(r.path).endsWith(`/${path}`),
    );
  }

  /** API requests (revision and tree). */
  apiCalls(): RecordedHubRequest[] {
    return this.requests.filter((r) => r.path.startsWith("/api/"));
  }

  private handle(req: IncomingMessage, res: ServerResponse) {
    const url = new URL(req.url ?? "/", this.baseUrl);
    this.requests.push({
      method: req.method ?? "GET",
      path: url.pathname + url.search,
      headers: req.headers,
    });
    const parts = url.pathname.split("/").filter(Boolean).map(decodeURIComponent);

    if (parts[0] === "cdn" && parts[1]) {
      const found = this.findBlob(parts[1]);
      if (!found) return error(res, 404, "EntryNotFound");
      return this.sendFile(req, res, found.path, found.bytes);
    }
    if (parts[0] === "api" && parts[1] === "models") {
      const failure = this.apiFailures.shift();
      if (failure !== undefined) return error(res, failure, "");
      const [owner, name, kind, rev] = parts.slice(2);
      const repo = this.repoFor(`${owner}/${name}`, req, res);
      if (!repo) return;
      const commit = resolveRef(repo, rev ?? "");
      if (!commit) return error(res, 404, "RevisionNotFound");
      const files = repo.commits.get(commit) as Map<string, Buffer>;
      if (kind === "revision") {
        return json(res, 200, {
          _id: "fake",
          id: `${owner}/${name}`,
          sha: commit,
          siblings: [...files.keys()].map((rfilename) => ({ rfilename })),
          tags: ["gpt2", ...(repo.license ? [`license:${repo.license}`] : [])],
          ...(repo.license ? { cardData: { license: repo.license } } : {}),
        });
      }
      if (kind === "tree") {
        const entries = treeEntries(files, repo.lfs);
        const cursor = Number(url.searchParams.get("cursor") ?? 0);
        const size = this.pageSize > 0 ? this.pageSize : entries.length;
        const page = entries.slice(cursor, cursor + size);
        const headers: Record<string, string> = {};
        if (cursor + size < entries.length) {
          const next = new URL(url);
          next.searchParams.set("cursor", String(cursor + size));
          headers.link = `<${next.toString()}>; rel="next"`;
        }
        return json(res, 200, page, headers);
      }
      return error(res, 404, "");
    }
    const resolveAt = parts.indexOf("resolve");
    if (resolveAt === 2) {
      const [owner, name] = parts;
      const repo = this.repoFor(`${owner}/${name}`, req, res);
      if (!repo) return;
      const commit = resolveRef(repo, parts[3] ?? "");
      if (!commit) return error(res, 404, "RevisionNotFound");
      const path = parts.slice(4).join("/");
      const bytes = repo.commits.get(commit)?.get(path);
      if (!bytes) return error(res, 404, "EntryNotFound");
      const fault = this.faults.get(path)?.[0];
      if (fault?.kind === "status") {
        this.faults.get(path)?.shift();
        res.writeHead(fault.status, { "content-type": "application/json", ...fault.headers });
        res.end(JSON.stringify({ error: `fake status ${fault.status}` }));
        return;
      }
      if (repo.lfs(path)) {
        res.writeHead(302, { location: `/cdn/${sha256(bytes)}`, "x-repo-commit": commit });
        res.end();
        return;
      }
      return this.sendFile(req, res, path, bytes);
    }
    error(res, 404, "");
  }

  private repoFor(id: string, req: IncomingMessage, res: ServerResponse): FakeRepo | undefined {
    const repo = this.repos.get(id);
    const auth = req.headers.authorization;
    if (!repo) {
      // The Hub answers 401 without a token, so as not to reveal whether a private repo exists.
      if (!auth) error(res, 401, "RepoNotFound");
      else error(res, 404, "RepoNotFound");
      return undefined;
    }
    if (repo.token && auth !== `Bearer ${repo.token}`) {
      if (repo.gated) error(res, auth ? 403 : 401, "GatedRepo");
      else error(res, 401, "RepoNotFound");
      return undefined;
    }
    return repo;
  }

  private findBlob(hash: string): { path: string; bytes: Buffer } | undefined {
    for (const repo of this.repos.values()) {
      for (const files of repo.commits.values()) {
        for (const [path, bytes] of files) {
          if (sha256(bytes) === hash) return { path, bytes };
        }
      }
    }
    return undefined;
  }

  private sendFile(
    req: IncomingMessage,
    res: ServerResponse,
    path: string,
    original: Buffer,
  ): void {
    const fault = this.faults.get(path)?.shift();
    let bytes = original;
    if (fault?.kind === "corrupt") {
      bytes = Buffer.from(original);
      const at = Math.floor(bytes.length / 2);
      bytes[at] = (bytes[at] as number) ^ 0xff;
    }
    const range = /^bytes=(\d+)-$/.exec(String(req.headers.range ?? ""));
    let status = 200;
    let start = 0;
    const headers: Record<string, string> = {
      "content-type": "application/octet-stream",
      "accept-ranges": "bytes",
      etag: `"${sha256(original)}"`,
    };
    if (range && fault?.kind !== "ignoreRange") {
      start = Number(range[1]);
      if (start >= bytes.length) {
        res.writeHead(416, { "content-range": `bytes */${bytes.length}` });
        res.end();
        return;
      }
      status = 206;
      headers["content-range"] = `bytes ${start}-${bytes.length - 1}/${bytes.length}`;
    }
    const body = bytes.subarray(start);
    this.served.push({ path, range: req.headers.range, status });
    headers["content-length"] = String(body.length);
    res.writeHead(status, headers);
    if (fault?.kind === "cut") {
      res.write(body.subarray(0, fault.afterBytes), () => {
        // Let the bytes reach the client before the connection drops.
        setTimeout(() => res.socket?.destroy(), 20);
      });
      return;
    }
    res.end(body);
  }
}

function resolveRef(repo: FakeRepo, rev: string): string | undefined {
  if (repo.commits.has(rev)) return rev;
  return repo.refs.get(rev);
}

function treeEntries(files: Map<string, Buffer>, lfs: (path: string) => boolean) {
  const dirs = new Set<string>();
  const entries: unknown[] = [];
  for (const [path, bytes] of [...files].sort(([a], [b]) => a.localeCompare(b))) {
    const segments = path.split("/");
    for (let i = 1; i < segments.length; i++) {
      const dir = segments.slice(0, i).join("/");
      if (!dirs.has(dir)) {
        dirs.add(dir);
        entries.push({ type: "directory", oid: "0".repeat(40), size: 0, path: dir });
      }
    }
    if (lfs(path)) {
      const pointer = `version https://git-lfs.github.com/spec/v1\noid sha256:${sha256(bytes)}\nsize ${bytes.length}\n`;
      entries.push({
        type: "file",
        oid: gitBlobId(Buffer.from(pointer)),
        size: bytes.length,
        path,
        lfs: { oid: sha256(bytes), size: bytes.length, pointerSize: pointer.length },
      });
    } else {
      entries.push({ type: "file", oid: gitBlobId(bytes), size: bytes.length, path });
    }
  }
  return entries;
}

export function sha256(bytes: Buffer): string {
  return createHash("sha256").update(bytes).digest("hex");
}

export function gitBlobId(bytes: Buffer): string {
  return createHash("sha1").update(`blob ${bytes.length}\0`).update(bytes).digest("hex");
}

function json(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
) {
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(JSON.stringify(body));
}

function error(res: ServerResponse, status: number, code: string): void {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (code) headers["x-error-code"] = code;
  res.writeHead(status, headers);
  res.end(JSON.stringify({ error: code || `HTTP ${status}` }));
}
