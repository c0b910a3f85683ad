// `npm test`'s last step: bundle test/*.test.ts for Node (with `obsidian` aliased to
// test/obsidian-stub.ts) and run them with Node's built-in test runner.
// `node test/run.mjs block state` runs only the files whose name contains a word;
// LENSLINK_SKIP_E2E=1 leaves out the tests that need the Python daemon (e2e, parity).
import { spawnSync } from "node:child_process";
import { readdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import esbuild from "esbuild";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const outdir = join(root, ".test-build");
const words = process.argv.slice(2);
const entries = readdirSync(join(root, "test"))
	.filter((name) => name.endsWith(".test.ts"))
	.filter((name) => !words.length || words.some((word) => name.includes(word)))
	.filter((name) => !(process.env.LENSLINK_SKIP_E2E === "1" && /^(e2e|parity)\./.test(name)));

rmSync(outdir, { recursive: true, force: true });
await esbuild.build({
	entryPoints: entries.map((name) => join(root, "test", name)),
	outdir,
	outExtension: { ".js": ".mjs" },
	bundle: true,
	platform: "node",
	format: "esm",
	target: "node20",
	sourcemap: "inline",
	alias: { obsidian: join(root, "test", "obsidian-stub.ts") },
	logLevel: "warning",
});

const files = entries.map((name) => join(outdir, name.replace(/\.ts$/, ".mjs")));
const result = spawnSync(process.execPath, ["--enable-source-maps", "--test", "--test-reporter=spec", ...files], { stdio: "inherit" });
process.exit(result.status ?? 1);
