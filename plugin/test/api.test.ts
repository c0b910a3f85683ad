import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { DaemonError, LenslinkClient, Transport, apiBase, obsidianTransport } from "../src/api";
import { requestLog } from "./obsidian-stub";
import { Seen, closedPort, fetchTransport, scriptedServer } from "./helpers";

const TOKEN = "s3cret-token";

function authorized(seen: Seen): boolean {
	return seen.headers.authorization === `Bearer ${TOKEN}`;
}

const unauthorized = { status: 401, body: { error: { code: "unauthorized", message: "missing or wrong token; see `lenslink token`" } } };

describe("LenslinkClient against a local HTTP server", () => {
	let server: Awaited<ReturnType<typeof scriptedServer>>;
	let client: LenslinkClient;

	before(async () => {
		server = await scriptedServer({
			"/v1/health": () => ({ status: 200, body: { ok: true, version: "0.9" } }),
			"/v1/status": (seen) => authorized(seen)
				? { status: 200, body: { phase: "ready", notes: 3, queue: 0 } } : unauthorized,
			"/v1/lenses": (seen) => authorized(seen)
				? { status: 200, body: { lenses: [{ name: "topic", description: "d", top_k: 5, min_score: 0 }] } } : unauthorized,
			"/v1/related": (seen) => seen.url.includes("Missing")
				? { status: 404, body: { error: { code: "NotFound", message: "no note 'Missing.md' in the index; check the name or run `lenslink index`" } } }
				: { status: 200, body: { note: "a b/Ünïcode.md", lens: "topic", related: [] } },
			"/v1/block": (seen) => seen.url.includes("early")
				? { status: 503, body: { error: { code: "NotReady", message: "the first index is still being built; see /v1/status for progress" } } }
				: { status: 409, body: { error: { code: "BlockError", message: "a.md: two lenslink blocks (starting at lines 3, 9); remove one by hand" } } },
			"/v1/write": (seen) => ({ status: 200, body: { results: [{ path: (JSON.parse(seen.body) as { path: string }).path, status: "written", detail: "" }] } }),
			"/v1/rebuild": () => ({ status: 500, body: "<html>proxy error</html>", raw: true }),
			"/v1/reindex": () => ({ status: 200, body: "not json", raw: true }),
		});
		client = new LenslinkClient(() => ({ url: server.url, token: ` ${TOKEN}\n` }), fetchTransport);
	});

	after(() => server.close());

	it("sends the bearer token (trimmed) on authenticated endpoints only", async () => {
		server.seen.length = 0;
		assert.deepEqual(await client.health(), { ok: true, version: "0.9" });
		assert.equal((await client.status()).phase, "ready");
		assert.equal(server.seen[0].headers.authorization, undefined);
		assert.equal(server.seen[1].headers.authorization, `Bearer ${TOKEN}`);
		assert.equal(server.seen[1].url, "/v1/status");
	});

	it("unwraps lists and encodes note paths in the query", async () => {
		assert.deepEqual((await client.lenses()).map((lens) => lens.name), ["topic"]);
		server.seen.length = 0;
		await client.related("a b/Ünïcode.md", "topic", 7);
		const url = new URL(server.seen[0].url, server.url);
		assert.equal(url.searchParams.get("path"), "a b/Ünïcode.md");
		assert.equal(url.searchParams.get("lens"), "topic");
		assert.equal(url.searchParams.get("top"), "7");
	});

	it("posts JSON bodies", async () => {
		server.seen.length = 0;
		const results = await client.write("notes/x.md");
		assert.deepEqual(results, [{ path: "notes/x.md", status: "written", detail: "" }]);
		assert.equal(server.seen[0].method, "POST");
		assert.deepEqual(JSON.parse(server.seen[0].body), { path: "notes/x.md" });
		assert.match(String(server.seen[0].headers["content-type"]), /application\/json/);
	});

	it("maps 401 to 'wrong token'", async () => {
		const wrong = new LenslinkClient(() => ({ url: server.url, token: "nope" }), fetchTransport);
		await assert.rejects(wrong.status(), (error: unknown) => {
			assert.ok(error instanceof DaemonError);
			assert.equal(error.kind, "unauthorized");
			assert.equal(error.status, 401);
			assert.match(error.message, /^Wrong token/);
			assert.match(error.message, /lenslink token/);
			return true;
		});
	});

	it("surfaces the daemon's JSON error messages with their code", async () => {
		await assert.rejects(client.related("Missing.md"), (error: unknown) => {
			assert.ok(error instanceof DaemonError);
			assert.equal(error.kind, "not-found");
			assert.equal(error.code, "NotFound");
			assert.equal(error.message, "no note 'Missing.md' in the index; check the name or run `lenslink index`");
			return true;
		});
		await assert.rejects(client.block("a.md"), (error: unknown) => {
			assert.ok(error instanceof DaemonError);
			assert.equal(error.kind, "refused");
			assert.equal(error.status, 409);
			assert.equal(error.message, "a.md: two lenslink blocks (starting at lines 3, 9); remove one by hand");
			return true;
		});
	});

	it("maps 503 to 'not ready' (the first index is being built)", async () => {
		await assert.rejects(client.block("early.md"), (error: unknown) =>
			error instanceof DaemonError && error.kind === "not-ready" && error.code === "NotReady" &&
			error.message === "the first index is still being built; see /v1/status for progress");
	});

	it("reports answers that are not lenslink's JSON as such", async () => {
		await assert.rejects(client.rebuild(), (error: unknown) => {
			assert.ok(error instanceof DaemonError);
			assert.equal(error.kind, "server");
			assert.match(error.message, /HTTP 500 without lenslink's JSON/);
			return true;
		});
		await assert.rejects(client.reindex("a.md"), /did not answer with lenslink's JSON/);
	});

	it("works through the requestUrl transport, asking it not to throw on errors", async () => {
		const viaObsidian = new LenslinkClient(() => ({ url: server.url, token: TOKEN }), obsidianTransport);
		requestLog.length = 0;
		assert.equal((await viaObsidian.status()).notes, 3);
		await assert.rejects(viaObsidian.related("Missing.md"), (error: unknown) =>
			error instanceof DaemonError && error.kind === "not-found");
		await viaObsidian.write("x.md");
		assert.equal(requestLog.length, 3);
		assert.ok(requestLog.every((request) => request.throw === false));
		assert.equal(requestLog[2].contentType, "application/json");
		assert.equal(requestLog[0].headers?.Authorization, `Bearer ${TOKEN}`);
	});
});

describe("LenslinkClient without a daemon", () => {
	it("maps connection refused to 'daemon not running'", async () => {
		const port = await closedPort();
		for (const transport of [fetchTransport, obsidianTransport]) {
			const client = new LenslinkClient(() => ({ url: `http://127.0.0.1:${port}`, token: TOKEN }), transport);
			await assert.rejects(client.status(), (error: unknown) => {
				assert.ok(error instanceof DaemonError);
				assert.equal(error.kind, "down");
				assert.match(error.message, new RegExp(`^lenslink daemon not running at http://127\\.0\\.0\\.1:${port}`));
				return true;
			});
		}
	});

	it("refuses non-loopback URLs without sending anything", async () => {
		let calls = 0;
		const counting: Transport = async () => {
			calls++;
			return { status: 200, text: "{}" };
		};
		for (const url of ["http://example.com:8765", "https://127.0.0.1:8765", "http://10.0.0.2:8765", "127.0.0.1:8765", "not a url"]) {
			const client = new LenslinkClient(() => ({ url, token: TOKEN }), counting);
			await assert.rejects(client.status(), (error: unknown) =>
				error instanceof DaemonError && error.kind === "bad-url", url);
		}
		assert.equal(calls, 0);
	});

	it("normalises pasted daemon URLs", () => {
		assert.equal(apiBase("http://127.0.0.1:8765/"), "http://127.0.0.1:8765");
		assert.equal(apiBase(" http://localhost:9000/v1/ "), "http://localhost:9000");
		assert.equal(apiBase("http://[::1]:8765"), "http://[::1]:8765");
		assert.equal(apiBase("http://127.1.2.3:1"), "http://127.1.2.3:1");
	});
});
