import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DaemonError, DaemonStatus } from "../src/api";
import { Observed, indexChanged, isBusy, statusLabel } from "../src/status";

function status(extra: Partial<DaemonStatus>): Observed {
	return {
		ok: true,
		status: {
			vault: "/v", notes: 10, embedded_texts: 10, texts: 10, lenses: [], phase: "ready", progress: null,
			queue: 0, last_error: null, last_sync: 100, write_policy: "manual", problems: {}, ...extra,
		},
	};
}

describe("statusLabel", () => {
	it("says connected, indexing with progress, or what is wrong", () => {
		assert.equal(statusLabel(status({})).text, "lenslink: connected");
		assert.equal(statusLabel(status({ phase: "indexing", progress: { stage: "embed", done: 12, total: 55 } })).text,
			"lenslink: indexing embed 12/55");
		assert.equal(statusLabel(status({ phase: "starting" })).text, "lenslink: indexing");
		const failed = statusLabel(status({ phase: "error", last_error: "embedder failed" }));
		assert.deepEqual([failed.text, failed.tooltip, failed.state], ["lenslink: error", "embedder failed", "error"]);
		const config = statusLabel(status({ config_error: ".lenslink.toml: not valid TOML" }));
		assert.deepEqual([config.text, config.tooltip, config.state],
			["lenslink: config error", ".lenslink.toml: not valid TOML", "error"]);
		assert.equal(statusLabel(status({ config_error: null })).text, "lenslink: connected");
		assert.equal(statusLabel({ ok: false, error: new DaemonError("down", "lenslink daemon not running at x") }).text,
			"lenslink: not running");
		assert.equal(statusLabel({ ok: false, error: new DaemonError("unauthorized", "Wrong token") }).text,
			"lenslink: wrong token");
	});
});

describe("follow-up while the daemon works", () => {
	it("is wanted only while indexing or with queued changes", () => {
		assert.equal(isBusy(status({ phase: "indexing" })), true);
		assert.equal(isBusy(status({ queue: 2 })), true);
		assert.equal(isBusy(status({})), false);
		assert.equal(isBusy(status({ phase: "error" })), false);
		assert.equal(isBusy({ ok: false, error: new DaemonError("down", "x") }), false);
	});
});

describe("indexChanged", () => {
	it("fires when the daemon comes up, finishes a batch or settles", () => {
		const down: Observed = { ok: false, error: new DaemonError("down", "x") };
		assert.equal(indexChanged(null, status({})), false);
		assert.equal(indexChanged(down, status({})), true);
		assert.equal(indexChanged(status({}), status({})), false);
		assert.equal(indexChanged(status({}), status({ last_sync: 101 })), true);
		assert.equal(indexChanged(status({ phase: "indexing" }), status({})), true);
		assert.equal(indexChanged(status({}), down), false);
	});
});
