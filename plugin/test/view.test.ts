/** The pane renders each state of its model, in a stand-in Obsidian (text only, no layout). */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { WorkspaceLeaf } from "obsidian";
import { DaemonError, DaemonStatus, RelatedNote } from "../src/api";
import { DEFAULT_SETTINGS } from "../src/settings";
import { LensGroup } from "../src/state";
import { PaneHost, RelatedView } from "../src/view";
import { App, FakeEl, TFile } from "./obsidian-stub";

function note(path: string, extra: Partial<RelatedNote> = {}): RelatedNote {
	return { path, title: path.replace(/\.md$/, "").split("/").pop() ?? path, score: 0.72, score_kind: "probability",
		linked: false, reason: { passage: "the passage that matched" }, ...extra };
}

function paneWith(answer: () => Promise<LensGroup[]>, options: { active?: string | null; status?: Partial<DaemonStatus> } = {}) {
	const app = new App("/vaults/My Notes");
	const inserted: string[] = [];
	const host: PaneHost = {
		settings: { ...DEFAULT_SETTINGS },
		source: answer,
		paneLens: () => null,
		chooseLens: () => undefined,
		activeNote: () => (options.active === null ? null : new TFile(options.active ?? "topics/Sourdough.md")) as never,
		vaultPath: () => "/vaults/My Notes",
		daemonStatus: () => (options.status ? { phase: "ready", progress: null, ...options.status } as DaemonStatus : null),
		linkFor: (target) => `[[${target}]]`,
		insertLink: (target, source) => inserted.push(`${source} -> ${target}`),
		reindex: async () => undefined,
	};
	const view = new RelatedView({ app } as unknown as WorkspaceLeaf, host);
	const root = (view as unknown as { contentEl: FakeEl }).contentEl;
	return { view, host, root, inserted };
}

function find(el: FakeEl, cls: string): FakeEl[] {
	return [...(el.classes.has(cls) ? [el] : []), ...el.children.flatMap((child) => find(child, cls))];
}

describe("RelatedView", () => {
	it("asks for a note when none is open", async () => {
		const { view, root } = paneWith(async () => [], { active: null });
		await view.onOpen();
		assert.match(root.allText(), /Open a note to see its related notes\./);
	});

	it("shows how to start the daemon when it is down", async () => {
		const { view, root } = paneWith(async () => {
			throw new DaemonError("down", "lenslink daemon not running at http://127.0.0.1:8765 (fetch failed)");
		});
		await view.onOpen();
		const text = root.allText();
		assert.match(text, /The lenslink daemon is not running/);
		assert.match(text, /lenslink serve '\/vaults\/My Notes'/);
		assert.match(text, /Retry/);
	});

	it("groups results by lens with readable scores, link marks and reasons", async () => {
		const { view, host, root, inserted } = paneWith(async () => [
			{ lens: "topic", items: [note("topics/Fermentation.md", { linked: true }), note("topics/Bread.md", { score: 0.9, score_kind: "percentile" })] },
			{ lens: "project", items: [note("projects/Sourdough starter.md")] },
		]);
		await view.onOpen();
		assert.deepEqual(find(root, "lenslink-group-title").map((el) => el.text), ["topic", "project"]);
		assert.deepEqual(find(root, "lenslink-title").map((el) => el.text), ["Fermentation", "Bread", "Sourdough starter"]);
		assert.deepEqual(find(root, "lenslink-score").map((el) => el.text), ["72% likely", "top 10%", "72% likely"]);
		assert.equal(find(root, "lenslink-linked").length, 1);
		assert.equal(find(root, "lenslink-passage").length, 0);

		find(root, "lenslink-toggle")[0].listeners.click?.({});
		assert.deepEqual(find(root, "lenslink-passage").map((el) => el.text), ["the passage that matched"]);

		find(root, "lenslink-insert")[1].listeners.click?.({});
		assert.deepEqual(inserted, ["topics/Sourdough.md -> topics/Bread.md"]);

		let dragged = "";
		find(root, "lenslink-item")[0].listeners.dragstart?.({ dataTransfer: { setData: (_: string, text: string) => { dragged = text; } } });
		assert.equal(dragged, "[[topics/Fermentation.md]]");

		host.settings.showScores = false;
		view.redraw();
		assert.equal(find(root, "lenslink-score").length, 0);
	});

	it("says when a note is not indexed yet, with the daemon's progress", async () => {
		const missing = async (): Promise<LensGroup[]> => {
			throw new DaemonError("not-found", "no note in the index", 404, "NotFound");
		};
		const busy = paneWith(missing, { status: { phase: "indexing", progress: { stage: "embed", done: 3, total: 40 } } });
		await busy.view.onOpen();
		assert.match(busy.root.allText(), /indexing the vault \(embed 3\/40\)/);
		const early = paneWith(async () => {
			throw new DaemonError("not-ready", "the first index is still being built", 503, "NotReady");
		});
		await early.view.onOpen();
		assert.match(early.root.allText(), /lenslink is indexing the vault; related notes appear when it is done\./);
		const idle = paneWith(missing, { status: {} });
		await idle.view.onOpen();
		assert.match(idle.root.allText(), /not in the index/);
		assert.match(idle.root.allText(), /Reindex this note/);
	});

	it("says when there is nothing related", async () => {
		const { view, root } = paneWith(async () => [{ lens: "topic", items: [] }]);
		await view.onOpen();
		assert.match(root.allText(), /No related notes through any lens\./);
		const waiting = paneWith(async () => [{ lens: "topic", items: [], whyNone: "its text is not embedded yet (an index was interrupted, or a rewrite or the embedder failed)" }]);
		await waiting.view.onOpen();
		assert.match(waiting.root.allText(), /No related notes through any lens: its text is not embedded yet \(an index was interrupted, or a rewrite or the embedder failed\)\./);
	});
});
