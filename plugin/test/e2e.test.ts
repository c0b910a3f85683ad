/**
 * End to end: the real Python daemon on a copy of sample_vault, and the plugin's client,
 * state machine and splice running in Node against it. Indexing with the real model takes
 * roughly 30-90 s, hence the long timeout. LENSLINK_SKIP_E2E=1 leaves this file out.
 */
import assert from "node:assert/strict";
import { ChildProcess, execFileSync, spawn } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, sep } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { DaemonError, DaemonStatus, LenslinkClient } from "../src/api";
import { END, START, blockTargets, currentBlock, relinkBlock, splice } from "../src/block";
import { PaneModel, formatScore, groupedSource } from "../src/state";
import { Actions } from "../src/actions";
import { fetchTransport, findLenslink, until } from "./helpers";
import { App, FakeEditor, MarkdownView, Modal, Setting, TFile, notices } from "./obsidian-stub";
import type { App as ObsidianApp, TFile as ObsidianFile } from "obsidian";

const PLUGIN_DIR = join(dirname(fileURLToPath(import.meta.url)), "..");
const SAMPLE_VAULT = join(PLUGIN_DIR, "..", "sample_vault");
const READY_TIMEOUT_MS = 240_000;
const SERVING = /lenslink serving .* on (http:\/\/\S+)\/v1/;

async function waitForUrl(child: ChildProcess, log: { text: string }): Promise<string> {
	return new Promise((resolve, reject) => {
		const timer = setTimeout(() => reject(new Error(`daemon did not start in 60 s:\n${log.text}`)), 60_000);
		child.stderr?.on("data", () => {
			const match = SERVING.exec(log.text);
			if (match) {
				clearTimeout(timer);
				resolve(match[1]);
			}
		});
		child.on("exit", (code) => {
			clearTimeout(timer);
			reject(new Error(`daemon exited with ${code}:\n${log.text}`));
		});
	});
}

/** Vault files a link target names: a path (with or without .md) or a unique file name. */
function resolveLink(vault: string, target: string): string[] {
	const wanted = target.endsWith(".md") ? target : `${target}.md`;
	const files = readdirSync(vault, { recursive: true, encoding: "utf8" }).map((file) => file.split(sep).join("/"));
	return files.filter((file) => file === wanted || (!wanted.includes("/") && file.endsWith(`/${wanted}`)));
}

async function waitUntilReady(client: LenslinkClient): Promise<DaemonStatus> {
	const deadline = Date.now() + READY_TIMEOUT_MS;
	for (;;) {
		const status = await client.status();
		// ready, and done with the first training (it runs in the background and swaps the
		// learned rankers in when done: results would change under the tests)
		if (status.phase === "ready" && status.queue === 0 && !status.training) return status;
		if (status.phase === "error") throw new Error(`daemon failed to index: ${status.last_error}`);
		if (Date.now() > deadline) throw new Error(`daemon not ready after ${READY_TIMEOUT_MS / 1000} s: ${JSON.stringify(status)}`);
		await new Promise((resolve) => setTimeout(resolve, 500));
	}
}

describe("the plugin against the real lenslink daemon", { timeout: READY_TIMEOUT_MS + 120_000 }, () => {
	let tmp = "";
	let vault = "";
	let child: ChildProcess | null = null;
	let client: LenslinkClient;
	let url = "";
	const log = { text: "" };

	before(async () => {
		const lenslink = findLenslink(PLUGIN_DIR);
		if (!lenslink) {
			throw new Error("no lenslink executable: set LENSLINK_BIN, create ../.venv with lenslink installed, " +
				"or put lenslink on PATH (LENSLINK_SKIP_E2E=1 skips this test)");
		}
		tmp = mkdtempSync(join(tmpdir(), "lenslink-plugin-e2e-"));
		vault = join(tmp, "vault");
		cpSync(SAMPLE_VAULT, vault, { recursive: true });
		// One note in CRLF without a final newline, before the daemon reads it.
		const lyon = join(vault, "cities", "Lyon.md");
		writeFileSync(lyon, readFileSync(lyon, "utf8").replace(/\r?\n/g, "\r\n").replace(/\r\n$/, ""));
		// A note that opted out of lenslink: neither indexed nor written.
		writeFileSync(join(vault, "topics", "Private.md"), "---\nlenslink: false\n---\n# Private\nSourdough and fermentation.\n");
		const env = { ...process.env, LENSLINK_DATA_DIR: join(tmp, "data") };
		child = spawn(lenslink, ["serve", vault, "--host", "127.0.0.1", "--port", "0"], { env, stdio: ["ignore", "ignore", "pipe"] });
		child.stderr?.setEncoding("utf8");
		child.stderr?.on("data", (chunk: string) => { log.text += chunk; });
		url = await waitForUrl(child, log);
		const token = execFileSync(lenslink, ["token"], { env, encoding: "utf8" }).trim();
		client = new LenslinkClient(() => ({ url, token }), fetchTransport);
		await waitUntilReady(client);
	});

	after(async () => {
		if (child && child.exitCode === null) {
			const daemon = child;
			const code = await new Promise<number | string | null>((resolve) => {
				const timer = setTimeout(() => {
					daemon.kill("SIGKILL");
					resolve("no exit within 30 s");
				}, 30_000);
				daemon.on("exit", (exitCode) => {
					clearTimeout(timer);
					resolve(exitCode);
				});
				daemon.kill("SIGTERM");
			});
			assert.equal(code, 0, `daemon did not stop cleanly on SIGTERM:\n${log.text}`);
		}
		if (tmp) rmSync(tmp, { recursive: true, force: true });
	});

	it("is refused without the token, and says so", async () => {
		const anonymous = new LenslinkClient(() => ({ url, token: "" }), fetchTransport);
		assert.equal((await anonymous.health()).ok, true);
		await assert.rejects(anonymous.lenses(), (error: unknown) =>
			error instanceof DaemonError && error.kind === "unauthorized" && /^Wrong token/.test(error.message));
		const wrong = new LenslinkClient(() => ({ url, token: "not-the-token" }), fetchTransport);
		await assert.rejects(wrong.related("topics/Sourdough.md"), (error: unknown) =>
			error instanceof DaemonError && error.kind === "unauthorized");
	});

	it("lists the vault's lenses", async () => {
		const names = (await client.lenses()).map((lens) => lens.name);
		assert.ok(names.includes("topic"), names.join(", "));
		assert.ok(names.length >= 2, names.join(", "));
	});

	it("ranks related notes with calibrated, readable scores", async () => {
		const found = await client.related("topics/Sourdough.md", "topic");
		assert.equal(found.note, "topics/Sourdough.md");
		assert.ok(found.related.length > 0);
		for (const item of found.related) {
			assert.ok(["probability", "percentile"].includes(item.score_kind), item.score_kind);
			assert.match(formatScore(item.score, item.score_kind), /^(<|>)?\d+% likely$|^top \d+%$/);
			assert.ok(existsSync(join(vault, item.path)), item.path);
		}
		const paths = found.related.map((item) => item.path);
		assert.ok(paths.includes("topics/Fermentation.md") || paths.includes("projects/Sourdough starter.md"), paths.join(", "));
		assert.ok(found.related.some((item) => item.linked), "Sourdough links Fermentation and Sourdough starter");
	});

	it("drives the pane's states: results for a note, 'not indexed' for an excluded one", async () => {
		const source = groupedSource(async () => (await client.lenses()).map((lens) => lens.name),
			(path, lens) => client.related(path, lens));
		const model = new PaneModel(source);
		await model.show("topics/Sourdough.md", null);
		assert.equal(model.state.kind, "results");
		assert.ok(model.state.kind === "results" && model.state.groups.every((group) => group.items.length > 0));
		await model.show("templates/Daily template.md", null);
		assert.deepEqual(model.state, { kind: "empty", path: "templates/Daily template.md", lens: null, reason: "not-indexed" });
		await model.show("topics/Private.md", null);  // opted out: the daemon says why it has none
		assert.deepEqual(model.state, { kind: "empty", path: "topics/Private.md", lens: null, reason: "no-results",
			why: "it opts out (lenslink: false)" });
	});

	it("fetches a block and splices it exactly as the daemon would", async () => {
		for (const path of ["topics/Sourdough.md", "cities/Lyon.md"]) {
			const { block } = await client.block(path);
			assert.ok(block.startsWith(`${START}\n## Related notes\n`), block);
			assert.ok(block.endsWith(`${END}\n`), block);
			const targets = blockTargets(block);
			assert.ok(targets.length > 0, block);
			for (const target of targets) assert.equal(resolveLink(vault, target).length, 1, `${path} -> ${target}`);
			// Re-rendering every link as the same wikilink is what a default Obsidian would do.
			assert.equal(relinkBlock(block, (target) => `[[${target}]]`), block);

			const file = join(vault, path);
			const original = readFileSync(file, "utf8");
			const updated = splice(original, block);
			assert.notEqual(updated, original);
			writeFileSync(file, updated);
			assert.equal(readFileSync(file, "utf8"), updated);
			assert.equal(splice(updated, ""), original, "removing the block restores the note");
			assert.equal(splice(updated, block), updated, "splicing again changes nothing");
			assert.equal(currentBlock(updated).replace(/\r\n/g, "\n").replace(/\n?$/, "\n"), block);
			// The daemon renders the same block and splices with its own code: nothing to write.
			assert.deepEqual(await client.write(path), [{ path, status: "unchanged", detail: "" }]);
		}
		const lyon = readFileSync(join(vault, "cities", "Lyon.md"), "utf8");
		assert.ok(!/[^\r]\n/.test(lyon) && !lyon.endsWith("\n"), "CRLF and the missing final newline are kept");
	});

	it("queues a note for reindexing", async () => {
		assert.deepEqual(await client.reindex("topics/Sourdough.md"), { queued: "topics/Sourdough.md" });
	});

	it("updates blocks as the commands do: the open note in its editor, the rest after one confirmation", async () => {
		const app = new App(vault);
		const actions = new Actions(app as unknown as ObsidianApp, client, () => undefined);
		const asFile = (path: string) => new TFile(path) as unknown as ObsidianFile;

		// The note being edited, with unsaved typing: changed in the editor, not on disk.
		const open = "topics/Python.md";
		const onDisk = readFileSync(join(vault, open), "utf8");
		const editor = new FakeEditor(`${onDisk}typed, not saved yet\n`);
		app.workspace.markdownViews.push(new MarkdownView(new TFile(open), editor));
		notices.length = 0;
		await actions.updateNote(asFile(open));
		assert.deepEqual(notices, ["Updated the related notes of Python."]);
		const { block } = await client.block(open);
		const relinked = relinkBlock(block, (target) => {
			const dest = app.metadataCache.getFirstLinkpathDest(target, open);
			return dest ? app.fileManager.generateMarkdownLink(dest, open) : null;
		});
		assert.notEqual(relinked, block, "links follow the app's link format, not the daemon's");
		assert.match(relinked, /^- \[[^\]]+\]\([^)]+\.md\)$/m);
		assert.equal(editor.value, splice(`${onDisk}typed, not saved yet\n`, relinked));
		assert.equal(readFileSync(join(vault, open), "utf8"), onDisk);

		notices.length = 0;
		await actions.updateNote(asFile("topics/Private.md"));
		assert.match(notices[0], /opted out/);

		// Removing a block: the open note's in its editor; a note without one is left alone.
		notices.length = 0;
		await actions.removeBlock(asFile(open));
		assert.deepEqual(notices, ["Removed the related notes block of Python."]);
		assert.equal(editor.value, `${onDisk}typed, not saved yet\n`);
		await actions.removeBlock(asFile(open));
		assert.equal(notices[1], "Python has no related notes block.");
		await actions.updateNote(asFile(open));
		assert.equal(editor.value, splice(`${onDisk}typed, not saved yet\n`, relinked));

		// Update all: one confirmation with the count, then Vault.process per note.
		const files = app.vault.getMarkdownFiles();
		const before = new Map(files.map((file) => [file.path, readFileSync(join(vault, file.path), "utf8")]));
		Modal.opened.length = 0;
		Setting.buttons.length = 0;
		notices.length = 0;
		await actions.updateAll();
		assert.equal(Modal.opened.length, 1);
		const message = Modal.opened[0].contentEl.allText();
		const optedOut = files.filter((file) => app.metadataCache.getFileCache(file)?.frontmatter?.lenslink === false).length;
		assert.ok(optedOut >= 2, "Private.md and the sample vault's own opted-out note");
		const skipped = `${optedOut + 1} skipped (${optedOut} opted out, 1 not in the index).`;
		const counts = /^(\d+) notes will change; (\d+) already up to date\. (.*)$/.exec(message);
		assert.ok(counts, message);
		assert.equal(counts[3], skipped);
		const [change, unchanged] = [Number(counts[1]), Number(counts[2])];
		assert.equal(change + unchanged + optedOut + 1, files.length);
		const confirm = Setting.buttons.find((button) => button.cta);
		assert.equal(confirm?.text, `Update ${change} notes`);
		confirm?.handler();
		await until(() => notices.some((notice) => notice.startsWith("Updated ")), "the update to finish", 60_000);
		assert.equal(notices[notices.length - 1], `Updated ${change} notes.`);

		let written = 0;
		for (const file of files) {
			const old = before.get(file.path) ?? "";
			const now = readFileSync(join(vault, file.path), "utf8");
			assert.equal(splice(now, ""), splice(old, ""), `${file.path}: only the block changed`);
			if (now !== old) written++;
			if (["topics/Private.md", "templates/Daily template.md", open].includes(file.path)) {
				assert.equal(now, old, file.path);
			}
		}
		assert.equal(written, change);

		// Nothing left to do: no second confirmation.
		notices.length = 0;
		await actions.updateAll();
		assert.equal(Modal.opened.length, 1);
		assert.deepEqual(notices, [`Checking ${files.length} notes…`, `Every related notes block is up to date (${change + unchanged} notes). ${skipped}`]);
	});

	it("checks the connection and names the vault", async () => {
		const actions = new Actions(new App(vault) as unknown as ObsidianApp, client, () => undefined);
		notices.length = 0;
		await actions.checkConnection();
		assert.match(notices[0], /^Connected to lenslink \S+: \d+ notes, (ready|indexing)\.$/);
		const elsewhere = new Actions(new App(tmp) as unknown as ObsidianApp, client, () => undefined);
		await elsewhere.checkConnection();
		assert.match(notices[1], /It serves .*, not this vault/);
	});
});
