/** Shared test helpers: a fetch transport, a tiny scripted HTTP server, deferred promises. */
import { accessSync, constants, realpathSync, statSync } from "node:fs";
import { createServer, IncomingMessage, Server, ServerResponse } from "node:http";
import { delimiter, dirname, join, resolve } from "node:path";
import type { AddressInfo } from "node:net";
import type { Transport } from "../src/api";

/** The plugin's transport contract over Node's fetch (what Obsidian's requestUrl does). */
export const fetchTransport: Transport = async (request) => {
	const response = await fetch(request.url, {
		method: request.method,
		headers: request.body === undefined ? request.headers
			: { ...request.headers, "Content-Type": "application/json" },
		body: request.body,
	});
	return { status: response.status, text: await response.text() };
};

export interface Seen {
	method: string;
	url: string;
	headers: IncomingMessage["headers"];
	body: string;
}

export type Route = (seen: Seen) => { status: number; body: unknown; raw?: boolean };

/** A server on 127.0.0.1 answering by path from `routes`; records every request. */
export async function scriptedServer(routes: Record<string, Route>): Promise<{
	url: string; seen: Seen[]; close: () => Promise<void>;
}> {
	const seen: Seen[] = [];
	const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
		let body = "";
		req.on("data", (chunk: Buffer) => { body += chunk.toString("utf8"); });
		req.on("end", () => {
			const entry: Seen = { method: req.method ?? "", url: req.url ?? "", headers: req.headers, body };
			seen.push(entry);
			const route = routes[(req.url ?? "").split("?")[0]];
			const answer = route ? route(entry) : { status: 404, body: { error: { code: "not_found", message: "no endpoint" } } };
			const text = answer.raw ? String(answer.body) : JSON.stringify(answer.body);
			res.writeHead(answer.status, { "Content-Type": answer.raw ? "text/html" : "application/json" });
			res.end(text);
		});
	});
	await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
	const { port } = server.address() as AddressInfo;
	return {
		url: `http://127.0.0.1:${port}`,
		seen,
		close: () => new Promise<void>((resolve) => server.close(() => resolve())),
	};
}

/** A port on 127.0.0.1 that nothing listens on (bound, then released). */
export async function closedPort(): Promise<number> {
	const server = createServer();
	await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
	const { port } = server.address() as AddressInfo;
	await new Promise<void>((resolve) => server.close(() => resolve()));
	return port;
}

/** Wait for a condition (checked every 10 ms), failing after `timeoutMs`. */
export async function until(condition: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
	const deadline = Date.now() + timeoutMs;
	while (!condition()) {
		if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
		await new Promise((resolve) => setTimeout(resolve, 10));
	}
}

export interface Deferred<T> {
	promise: Promise<T>;
	resolve: (value: T) => void;
	reject: (error: unknown) => void;
}

export function deferred<T>(): Deferred<T> {
	let resolve!: (value: T) => void;
	let reject!: (error: unknown) => void;
	const promise = new Promise<T>((res, rej) => { resolve = res; reject = rej; });
	return { promise, resolve, reject };
}

/**
 * The `lenslink` executable for end-to-end tests: $LENSLINK_BIN, else the repo's
 * `.venv/bin/lenslink` (what CI creates), else `lenslink` on PATH; null when none exists.
 */
export function findLenslink(pluginDir: string): string | null {
	const fromEnv = process.env.LENSLINK_BIN;
	if (fromEnv) {
		const path = fromEnv.includes("/") ? resolve(fromEnv) : which(fromEnv);
		if (!path || !isExecutable(path)) throw new Error(`LENSLINK_BIN=${fromEnv} is not an executable`);
		return path;
	}
	const venv = join(pluginDir, "..", ".venv", "bin", "lenslink");
	return isExecutable(venv) ? venv : which("lenslink");
}

/** The Python interpreter of the environment `lenslink` is installed in, if it sits beside it. */
export function pythonBeside(lenslink: string): string | null {
	const dir = dirname(realpathSync(lenslink));
	for (const name of ["python", "python3"]) {
		if (isExecutable(join(dir, name))) return join(dir, name);
	}
	return null;
}

function which(command: string): string | null {
	for (const dir of (process.env.PATH ?? "").split(delimiter).filter(Boolean)) {
		if (isExecutable(join(dir, command))) return join(dir, command);
	}
	return null;
}

function isExecutable(path: string): boolean {
	try {
		accessSync(path, constants.X_OK);
		return statSync(path).isFile();
	} catch {
		return false;
	}
}
