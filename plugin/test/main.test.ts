/** The plugin's wiring in a stand-in Obsidian: commands, options, the status bar, errors. */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { App as ObsidianApp, TFile as ObsidianFile } from "obsidian";
import { Actions } from "../src/actions";
import { LenslinkClient } from "../src/api";
import LenslinkPlugin from "../src/main";
import { DEFAULT_SETTINGS } from "../src/settings";
import { App, FakeCommand, Plugin, TFile, notices } from "./obsidian-stub";
import { closedPort, scriptedServer, until } from "./helpers";

describe("the plugin in a stand-in Obsidian", () => {
	let root = "";
	let app: App;

	before(() => {
		root = mkdtempSync(join(tmpdir(), "lenslink-plugin-"));
		writeFileSync(join(root, "Note.md"), "# Note\n");
		app = new App(root);
	});

	after(() => rmSync(root, { recursive: true, force: true }));

	async function loaded(data: unknown): Promise<LenslinkPlugin & Plugin> {
		const plugin = new LenslinkPlugin(app as unknown as ObsidianApp, { id: "lenslink" } as never) as unknown as LenslinkPlugin & Plugin;
		plugin.data = data;
		await plugin.onload();
		return plugin;
	}

	it("registers the commands with stable ids and no default hotkeys", async () => {
		const plugin = await loaded(null);
		const commands: FakeCommand[] = plugin.commands;
		assert.deepEqual(commands.map((c) => c.id), ["open-related-pane", "update-block", "take-over-block", "remove-block", "update-all-blocks",
			"reindex-note", "rebuild-index", "switch-lens", "check-connection"]);
		for (const command of commands) {
			assert.equal(command.hotkeys, undefined, command.id);
			assert.doesNotMatch(command.name, /lenslink|command/i, command.name);
		}
		assert.deepEqual(plugin.settings, DEFAULT_SETTINGS);
		assert.ok(Object.keys(plugin.views).includes("lenslink-related"));
		plugin.unload();
	});

	it("offers note commands only when a Markdown note is active", async () => {
		const plugin = await loaded(null);
		const update = plugin.commands.find((c) => c.id === "update-block");
		app.workspace.activeFile = null;
		assert.equal(update?.checkCallback?.(true), false);
		app.workspace.activeFile = new TFile("picture.png");
		assert.equal(update?.checkCallback?.(true), false);
		app.workspace.activeFile = new TFile("Note.md");
		assert.equal(update?.checkCallback?.(true), true);
		plugin.unload();
	});

	it("keeps saved options over the defaults", async () => {
		const plugin = await loaded({ token: "abc", showScores: false });
		assert.deepEqual(plugin.settings, { ...DEFAULT_SETTINGS, token: "abc", showScores: false });
		plugin.unload();
	});

	it("shows 'not running' in the status bar when no daemon listens", async () => {
		const port = await closedPort();
		const plugin = await loaded({ daemonUrl: `http://127.0.0.1:${port}` });
		const item = plugin.statusBarItems[0];
		await until(() => item.text !== "", "the status bar");
		assert.equal(item.text, "lenslink: not running");
		assert.equal(item.attrs["data-lenslink-state"], "down");
		plugin.unload();
	});

	it("tells the user how to start the daemon, or that the token is wrong", async () => {
		const port = await closedPort();
		const file = new TFile("Note.md") as unknown as ObsidianFile;
		let afterCommand = 0;
		const down = new Actions(app as unknown as ObsidianApp,
			new LenslinkClient(() => ({ url: `http://127.0.0.1:${port}`, token: "t" })), () => afterCommand++);
		notices.length = 0;
		await down.updateNote(file);
		assert.deepEqual(notices, [`The lenslink daemon is not running. Start it with: lenslink serve ${root}`]);
		assert.equal(afterCommand, 1);

		const server = await scriptedServer({
			"/v1/health": () => ({ status: 200, body: { ok: true, version: "1" } }),
			"/v1/status": () => ({ status: 401, body: { error: { code: "unauthorized", message: "missing or wrong token" } } }),
			"/v1/reindex": () => ({ status: 401, body: { error: { code: "unauthorized", message: "missing or wrong token" } } }),
		});
		try {
			const wrong = new Actions(app as unknown as ObsidianApp,
				new LenslinkClient(() => ({ url: server.url, token: "bad" })), () => afterCommand++);
			notices.length = 0;
			await wrong.checkConnection();
			await wrong.reindex(file);
			assert.equal(notices.length, 2);
			assert.ok(notices.every((notice) => notice.startsWith("Wrong token: paste the output of `lenslink token`")), notices.join("\n"));
		} finally {
			await server.close();
		}
	});
});
