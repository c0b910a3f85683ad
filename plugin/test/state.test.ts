import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DaemonError, RelatedNote } from "../src/api";
import { LensGroup, PaneModel, PaneState, RelatedSource, formatScore, groupedSource, startCommand, whyNone } from "../src/state";
import { Deferred, deferred } from "./helpers";

function note(path: string, score = 0.5): RelatedNote {
	return { path, title: path.replace(/\.md$/, ""), score, score_kind: "probability", linked: false, reason: { passage: "p" } };
}

/** A source whose answers the test releases one by one, in any order. */
function scriptedSource() {
	const calls: { path: string; lens: string | null; answer: Deferred<LensGroup[]> }[] = [];
	const source: RelatedSource = (path, lens) => {
		const answer = deferred<LensGroup[]>();
		calls.push({ path, lens, answer });
		return answer.promise;
	};
	return { calls, source };
}

function recordingModel(source: RelatedSource) {
	const seen: PaneState["kind"][] = [];
	const model = new PaneModel(source, (state) => seen.push(state.kind));
	return { model, seen };
}

describe("PaneModel", () => {
	it("goes loading -> results for a note with related notes", async () => {
		const { calls, source } = scriptedSource();
		const { model, seen } = recordingModel(source);
		const shown = model.show("a.md", null);
		assert.deepEqual(model.state, { kind: "loading", path: "a.md", lens: null });
		calls[0].answer.resolve([{ lens: "topic", items: [note("b.md")] }, { lens: "daily", items: [] }]);
		await shown;
		assert.deepEqual(model.state, { kind: "results", path: "a.md", lens: null, groups: [{ lens: "topic", items: [note("b.md")] }] });
		assert.deepEqual(seen, ["loading", "results"]);
	});

	it("shows 'no note' without asking the daemon", async () => {
		const { calls, source } = scriptedSource();
		const { model } = recordingModel(source);
		await model.show(null, null, "reload");
		assert.deepEqual(model.state, { kind: "no-note" });
		assert.equal(calls.length, 0);
	});

	it("distinguishes empty, not indexed, daemon down and other errors", async () => {
		const cases: [unknown, PaneState][] = [
			[[], { kind: "empty", path: "a.md", lens: "topic", reason: "no-results" }],
			[new DaemonError("not-found", "no note 'a.md' in the index", 404, "NotFound"),
				{ kind: "empty", path: "a.md", lens: "topic", reason: "not-indexed" }],
			[new DaemonError("not-ready", "the first index is still being built", 503, "NotReady"),
				{ kind: "empty", path: "a.md", lens: "topic", reason: "not-ready" }],
			[new DaemonError("down", "lenslink daemon not running at http://127.0.0.1:8765 (fetch failed)"),
				{ kind: "down", path: "a.md", message: "lenslink daemon not running at http://127.0.0.1:8765 (fetch failed)" }],
			[new DaemonError("unauthorized", "Wrong token", 401), { kind: "error", path: "a.md", message: "Wrong token" }],
			[new DaemonError("refused", "unknown lens 'x'; lenses: topic", 400, "ConfigError"),
				{ kind: "error", path: "a.md", message: "unknown lens 'x'; lenses: topic" }],
			[new DaemonError("not-found", "no endpoint /v1/related; see docs/api.md", 404, "not_found"),
				{ kind: "error", path: "a.md", message: "no endpoint /v1/related; see docs/api.md" }],
		];
		for (const [outcome, expected] of cases) {
			const model = new PaneModel(async () => {
				if (Array.isArray(outcome)) return outcome as LensGroup[];
				throw outcome;
			});
			await model.show("a.md", "topic");
			assert.deepEqual(model.state, expected);
		}
	});

	it("drops a response that arrives after the user switched notes", async () => {
		const { calls, source } = scriptedSource();
		const { model, seen } = recordingModel(source);
		const first = model.show("a.md", null);
		const second = model.show("b.md", null);
		calls[1].answer.resolve([{ lens: "topic", items: [note("from-b.md")] }]);
		await second;
		calls[0].answer.resolve([{ lens: "topic", items: [note("from-a.md")] }]);
		await first;
		assert.equal(model.state.kind, "results");
		assert.equal(model.path, "b.md");
		assert.deepEqual(model.state.kind === "results" && model.state.groups[0].items.map((i) => i.path), ["from-b.md"]);
		assert.deepEqual(seen, ["loading", "loading", "results"]);
	});

	it("drops a stale failure too, and everything after cancel()", async () => {
		const { calls, source } = scriptedSource();
		const { model } = recordingModel(source);
		const first = model.show("a.md", null);
		const second = model.show("b.md", null);
		calls[0].answer.reject(new DaemonError("down", "down"));
		await first;
		assert.deepEqual(model.state, { kind: "loading", path: "b.md", lens: null });
		model.cancel();
		calls[1].answer.resolve([{ lens: "topic", items: [note("x.md")] }]);
		await second;
		assert.deepEqual(model.state, { kind: "loading", path: "b.md", lens: null });
	});

	it("ignores repeated 'follow' events for what is shown, but reloads on demand", async () => {
		let asked = 0;
		const model = new PaneModel(async () => {
			asked++;
			return [{ lens: "topic", items: [note("b.md")] }];
		});
		await model.show("a.md", null);
		await model.show("a.md", null);
		assert.equal(asked, 1);
		await model.show("a.md", "topic");   // another lens is another question
		assert.equal(asked, 2);
		await model.show("a.md", "topic", "reload");
		assert.equal(asked, 3);
	});

	it("keeps results on screen during a background refresh, not for another note", async () => {
		const { calls, source } = scriptedSource();
		const { model, seen } = recordingModel(source);
		const first = model.show("a.md", null);
		calls[0].answer.resolve([{ lens: "topic", items: [note("b.md", 0.4)] }]);
		await first;
		const background = model.show("a.md", null, "background");
		assert.equal(model.state.kind, "results");
		calls[1].answer.resolve([{ lens: "topic", items: [note("b.md", 0.9)] }]);
		await background;
		assert.equal(model.state.kind === "results" && model.state.groups[0].items[0].score, 0.9);
		const other = model.show("c.md", null, "background");
		assert.equal(model.state.kind, "loading");
		calls[2].answer.resolve([]);
		await other;
		assert.deepEqual(seen, ["loading", "results", "results", "loading", "empty"]);
	});
});

describe("whyNone", () => {
	it("gives one reason when every lens gives it, else each lens's own", () => {
		const out = "it opts out (lenslink: false)";
		assert.equal(whyNone([{ lens: "topic", items: [] }]), undefined);
		assert.equal(whyNone([{ lens: "topic", items: [], whyNone: out }, { lens: "daily", items: [], whyNone: out }]), out);
		const notHere = "the lens does not apply to it (its `source` filter)";
		assert.equal(whyNone([{ lens: "topic", items: [] }, { lens: "daily", items: [], whyNone: notHere }]), `daily: ${notHere}`);
		assert.equal(whyNone([{ lens: "topic", items: [], whyNone: "its text is not embedded yet" },
			{ lens: "daily", items: [], whyNone: notHere }]),
			`topic: its text is not embedded yet; daily: ${notHere}`);
	});

	it("puts the reason into the empty state, only when there is one", async () => {
		const model = new PaneModel(async () => [{ lens: "topic", items: [], whyNone: "its text is not embedded yet" }]);
		await model.show("a.md", "topic");
		assert.deepEqual(model.state, { kind: "empty", path: "a.md", lens: "topic", reason: "no-results", why: "its text is not embedded yet" });
	});
});

describe("groupedSource", () => {
	it("asks every lens when none is chosen, in lens order", async () => {
		const asked: string[] = [];
		const source = groupedSource(async () => ["topic", "project"], async (path, lens) => {
			asked.push(`${path}:${lens}`);
			return { related: lens === "topic" ? [note("t.md")] : [], why_none: null };
		});
		assert.deepEqual(await source("a.md", null), [{ lens: "topic", items: [note("t.md")] }, { lens: "project", items: [] }]);
		assert.deepEqual(asked, ["a.md:topic", "a.md:project"]);
		const why = groupedSource(async () => ["topic"], async () => ({ related: [], why_none: "it opts out (lenslink: false)" }));
		assert.deepEqual(await why("a.md", null), [{ lens: "topic", items: [], whyNone: "it opts out (lenslink: false)" }]);
		assert.deepEqual(await source("a.md", "project"), [{ lens: "project", items: [] }]);
	});
});

describe("formatScore", () => {
	it("reads probabilities as likelihoods", () => {
		assert.equal(formatScore(0.72, "probability"), "72% likely");
		assert.equal(formatScore(0.004, "probability"), "<1% likely");
		assert.equal(formatScore(0.999, "probability"), ">99% likely");
	});

	it("reads percentiles as a top share of all pairs", () => {
		assert.equal(formatScore(0.95, "percentile"), "top 5%");
		assert.equal(formatScore(0.958, "percentile"), "top 5%");
		assert.equal(formatScore(0.5, "percentile"), "top 50%");
		assert.equal(formatScore(1, "percentile"), "top 1%");
		assert.equal(formatScore(0, "percentile"), "top 100%");
	});

	it("never shows a number it cannot explain", () => {
		assert.equal(formatScore(0.83, "cosine"), "");
		assert.equal(formatScore(Number.NaN, "probability"), "");
	});
});

describe("startCommand", () => {
	it("quotes vault paths for a shell", () => {
		assert.equal(startCommand("/home/me/Notes"), "lenslink serve /home/me/Notes");
		assert.equal(startCommand("/home/me/My Notes"), "lenslink serve '/home/me/My Notes'");
		assert.equal(startCommand("/home/me/Tom's"), "lenslink serve '/home/me/Tom'\\''s'");
		assert.equal(startCommand(null), "lenslink serve <vault path>");
	});
});
