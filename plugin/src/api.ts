/**
 * The daemon's local HTTP API (JSON under /v1), wrapped for the plugin. Obsidian's
 * `requestUrl` is the default transport (no CORS needed); tests inject their own.
 * Only loopback daemon URLs are accepted, so the token and note paths never leave
 * this computer.
 */
import { requestUrl } from "obsidian";

export interface HttpRequest {
	url: string;
	method: "GET" | "POST";
	headers: Record<string, string>;
	body?: string;
}

export interface HttpResponse {
	status: number;
	text: string;
}

/** Sends one request; rejects only when no HTTP response arrived (daemon down). */
export type Transport = (request: HttpRequest) => Promise<HttpResponse>;

/** Obsidian's `requestUrl`, asked not to throw on 4xx/5xx so errors keep their JSON body. */
export const obsidianTransport: Transport = async (request) => {
	const response = await requestUrl({
		url: request.url,
		method: request.method,
		headers: request.headers,
		body: request.body,
		contentType: request.body === undefined ? undefined : "application/json",
		throw: false,
	});
	return { status: response.status, text: response.text };
};

/** What went wrong, in terms a user can act on. */
export type ErrorKind =
	| "down"          // no HTTP response: the daemon is not running (or wrong URL)
	| "unauthorized"  // 401: missing or wrong token
	| "not-found"     // 404: note not in the index, or no such endpoint
	| "not-ready"     // 503: the daemon is still building its first index
	| "bad-url"       // the configured URL is not a loopback http URL
	| "refused"       // 4xx other than the above (bad request, conflict, write policy off)
	| "server";       // 5xx or a response that is not lenslink's JSON

export class DaemonError extends Error {
	constructor(readonly kind: ErrorKind, message: string, readonly status = 0, readonly code = "") {
		super(message);
		this.name = "DaemonError";
	}
}

export function isDaemonError(error: unknown, kind?: ErrorKind): error is DaemonError {
	return error instanceof DaemonError && (kind === undefined || error.kind === kind);
}

/** A readable one-line message for any error thrown while talking to the daemon. */
export function errorMessage(error: unknown): string {
	return error instanceof Error ? error.message : String(error);
}

// -- response shapes (see the daemon's server.py and daemon.py) -----------------------

export interface Health {
	ok: boolean;
	version: string;
}

export interface LensStatus {
	name: string;
	notes: number;
	sources: number;
	candidates: number;
	scores: string;
}

export interface Progress {
	stage: string;
	done: number;
	total: number;
}

export type Phase = "starting" | "indexing" | "ready" | "error" | "stopping";

export interface DaemonStatus {
	vault: string;
	notes: number;
	embedded_texts: number;
	texts: number;
	lenses: LensStatus[];
	phase: Phase;
	progress: Progress | null;
	queue: number;
	last_error: string | null;
	last_sync: number | null;
	write_policy: string;
	problems: Record<string, string[]>;
	/** The rankers are being retrained in the background (results change once it is done). */
	training?: boolean;
	/** Why .lenslink.toml, changed while the daemon ran, was not (fully) applied. */
	config_error?: string | null;
}

export interface Lens {
	name: string;
	description: string;
	top_k: number;
	min_score: number;
}

export interface RelatedNote {
	path: string;
	title: string;
	score: number;
	/** "probability" (calibrated on the vault's links) or "percentile" (too few links). */
	score_kind: string;
	linked: boolean;
	reason: { passage: string; title_mentioned?: boolean };
}

export interface RelatedResponse {
	note: string;
	lens: string;
	related: RelatedNote[];
	/** Why `related` is empty, when the daemon knows (opts out, below min_score, ...). */
	why_none?: string | null;
}

export interface BlockResponse {
	path: string;
	block: string;
	block_hash: string;
}

export interface WriteOutcome {
	path: string;
	status: string;   // written | unchanged | skipped | error
	detail: string;
}

// -- the client -----------------------------------------------------------------------

export interface Connection {
	url: string;
	token: string;
}

const LOOPBACK_HOST = /^(localhost|127(?:\.\d{1,3}){3}|\[::1\])$/i;

/** `http://127.0.0.1:8765` from what a user may paste (trailing slash or `/v1` dropped). */
export function apiBase(url: string): string {
	const trimmed = url.trim().replace(/\/+$/, "").replace(/\/v1$/, "");
	let parsed: URL;
	try {
		parsed = new URL(trimmed);
	} catch {
		throw new DaemonError("bad-url", `"${url}" is not a URL; use e.g. http://127.0.0.1:8765`);
	}
	if (parsed.protocol !== "http:" || !LOOPBACK_HOST.test(parsed.hostname)) {
		throw new DaemonError("bad-url", `lenslink only talks to a daemon on this computer: ` +
			`use http://127.0.0.1:PORT, not ${url}`);
	}
	return trimmed;
}

export class LenslinkClient {
	/** `connection` is read on every request, so settings changes apply at once. */
	constructor(private readonly connection: () => Connection,
		private readonly transport: Transport = obsidianTransport) {}

	health(): Promise<Health> {
		return this.request<Health>("GET", "/health", undefined, false);
	}

	status(): Promise<DaemonStatus> {
		return this.request<DaemonStatus>("GET", "/status");
	}

	async lenses(): Promise<Lens[]> {
		return (await this.request<{ lenses: Lens[] }>("GET", "/lenses")).lenses;
	}

	related(path: string, lens?: string | null, top?: number): Promise<RelatedResponse> {
		const query = new URLSearchParams({ path });
		if (lens) query.set("lens", lens);
		if (top !== undefined) query.set("top", String(top));
		return this.request<RelatedResponse>("GET", `/related?${query.toString()}`);
	}

	block(path: string): Promise<BlockResponse> {
		return this.request<BlockResponse>("GET", `/block?${new URLSearchParams({ path }).toString()}`);
	}

	async write(path: string): Promise<WriteOutcome[]> {
		return (await this.request<{ results: WriteOutcome[] }>("POST", "/write", { path })).results;
	}

	reindex(path: string): Promise<{ queued: string }> {
		return this.request("POST", "/reindex", { path });
	}

	rebuild(): Promise<{ rebuild: string }> {
		return this.request("POST", "/rebuild", {});
	}

	/** The base URL requests go to (for messages). */
	baseUrl(): string {
		return this.connection().url;
	}

	private async request<T>(method: "GET" | "POST", endpoint: string, body?: object,
		auth = true): Promise<T> {
		const { url, token } = this.connection();
		const base = apiBase(url);
		const headers: Record<string, string> = { Accept: "application/json" };
		if (auth) headers.Authorization = `Bearer ${token.trim()}`;
		let response: HttpResponse;
		try {
			response = await this.transport({
				url: `${base}/v1${endpoint}`, method, headers,
				body: body === undefined ? undefined : JSON.stringify(body),
			});
		} catch (error) {
			throw new DaemonError("down", `lenslink daemon not running at ${base} (${errorMessage(error)})`);
		}
		return parseResponse<T>(response, base);
	}
}

function parseResponse<T>(response: HttpResponse, base: string): T {
	let payload: unknown = null;
	try {
		payload = response.text ? JSON.parse(response.text) : null;
	} catch {
		payload = null;
	}
	if (response.status >= 200 && response.status < 300) {
		if (payload === null || typeof payload !== "object") {
			throw new DaemonError("server", `${base} did not answer with lenslink's JSON; ` +
				`is something else listening on that port?`, response.status);
		}
		return payload as T;
	}
	const error = (payload as { error?: { code?: unknown; message?: unknown } } | null)?.error;
	const code = typeof error?.code === "string" ? error.code : "";
	const detail = typeof error?.message === "string" ? error.message : `HTTP ${response.status}`;
	if (response.status === 401) {
		throw new DaemonError("unauthorized", "Wrong token: paste the output of `lenslink token` " +
			"into the lenslink plugin options", 401, code);
	}
	const kind: ErrorKind = response.status === 404 ? "not-found" : response.status === 503 ? "not-ready"
		: response.status >= 400 && response.status < 500 ? "refused" : "server";
	throw new DaemonError(kind, error ? detail : `${base} answered HTTP ${response.status} without ` +
		`lenslink's JSON error; is something else listening on that port?`, response.status, code);
}
