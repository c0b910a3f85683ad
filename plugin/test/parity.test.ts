/**
 * The plugin's splice and the daemon's `lenslink.block.splice` must agree byte for byte
 * (same result, or the same refusal), or a block written by one would look changed to the
 * other. Random notes built from the awkward parts: markers, fences, quotes, BOM, CR/LF.
 * Runs the Python next to the `lenslink` executable; LENSLINK_SKIP_E2E=1 leaves it out.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { dirname, join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { BlockError, END, START, isRendered, splice } from "../src/block";
import { findLenslink, pythonBeside } from "./helpers";

const PLUGIN_DIR = join(dirname(fileURLToPath(import.meta.url)), "..");
const CASES = 600;

const PIECES = ["text", "", "- [[Link]]", "```", "```js", "~~~", "````", "> ```", "> quote", "```a`b",
	"## Related notes", "*topic*", "🎉 ünï", " \t ", `see ${START} inline`];
const MARKERS = [START, END, `  ${START}\t`, `${END} `];
const ENDINGS = ["\n", "\r\n", "\r"];
const BLOCKS = ["", `${START}\n## Related notes\n*topic*\n- [[A]]\n- [[B c]]\n${END}\n`, `${START}\n- [[Only]]\n${END}\n`];

/** A small deterministic generator (mulberry32), so a failure names a reproducible case. */
function random(seed: number): () => number {
	let state = seed;
	return () => {
		state = (state + 0x6d2b79f5) | 0;
		let t = Math.imul(state ^ (state >>> 15), 1 | state);
		t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
		return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
	};
}

function randomNote(next: () => number): string {
	const pick = <T>(items: T[]): T => items[Math.floor(next() * items.length)];
	const lines = Array.from({ length: Math.floor(next() * 8) }, () => pick(PIECES));
	const at = () => Math.floor(next() * (lines.length + 1));
	if (next() < 0.4) lines.splice(at(), 0, pick(MARKERS.slice(0, 3).filter((m) => m !== END)), "- [[Old]]", pick([END, `${END} `]));
	if (next() < 0.1) lines.splice(at(), 0, pick(MARKERS));   // a stray marker: refused by both
	let text = next() < 0.1 ? "\ufeff" : "";
	lines.forEach((line, i) => {
		text += line;
		if (i < lines.length - 1 || next() < 0.6) text += next() < 0.8 ? pick(ENDINGS.slice(0, 2)) : pick(ENDINGS);
	});
	return text;
}

type Outcome = { text: string } | { error: string };

function tsSplice(text: string, block: string): Outcome {
	try {
		return { text: splice(text, block) };
	} catch (error) {
		return { error: error instanceof BlockError ? `BlockError: ${error.message}` : "ValueError" };
	}
}

const PYTHON_SPLICE = `
import json, sys
from lenslink.block import splice
from lenslink.errors import BlockError
out = []
for text, block in json.load(sys.stdin):
    try:
        out.append({"text": splice(text, block)})
    except BlockError as exc:
        out.append({"error": f"BlockError: {exc}"})
    except ValueError:
        out.append({"error": "ValueError"})
json.dump(out, sys.stdout)
`;

describe("splice parity with the daemon", () => {
	it("gives the same bytes or the same refusal as lenslink.block.splice", (t) => {
		const lenslink = findLenslink(PLUGIN_DIR);
		const python = lenslink ? pythonBeside(lenslink) : null;
		if (!python) {
			throw new Error("no Python beside a lenslink executable: set LENSLINK_BIN or create ../.venv " +
				"(LENSLINK_SKIP_E2E=1 skips this test)");
		}
		const next = random(20261126);
		const cases: [string, string][] = [];
		for (let i = 0; i < CASES; i++) {
			const note = randomNote(next);
			const block = BLOCKS[i % BLOCKS.length];
			cases.push([note, block]);
			// Also the note as the first splice left it: replacing and removing our own block.
			const first = tsSplice(note, block);
			if ("text" in first) cases.push([first.text, BLOCKS[(i + 1) % BLOCKS.length]]);
		}
		const expected = JSON.parse(execFileSync(python, ["-c", PYTHON_SPLICE], {
			input: JSON.stringify(cases), encoding: "utf8", maxBuffer: 64 * 1024 * 1024,
		})) as Outcome[];
		let refusals = 0;
		cases.forEach(([note, block], i) => {
			const actual = tsSplice(note, block);
			if ("error" in actual) refusals++;
			assert.deepEqual(actual, expected[i], `case ${i}: ${JSON.stringify([note, block])}`);
		});
		t.diagnostic(`${cases.length} cases, ${refusals} refused by both`);
		assert.ok(refusals > 0 && refusals < cases.length / 2, `${refusals} refusals: the generator should mix both`);
	});

	it("tells a hand-edited block from a rendered one as lenslink.block.is_rendered does", () => {
		const lenslink = findLenslink(PLUGIN_DIR);
		const python = lenslink ? pythonBeside(lenslink) : null;
		if (!python) throw new Error("no Python beside a lenslink executable");
		const inner = ["## Related notes", "*topic*", "- [[A note]]", "- [[a/b|B]]", "- ![[img.png]]",
			"- [A](A.md)", "- [A b](a%20b.md)", "- [a b](a%20b.md)", "- [C# x](C%23%20x.md)",
			"- [w \\[x\\]](w%20%5Bx%5D.md)", "- [[A#h]]", "- [b](x/b.c.md)", "- [e](e%zz.md)", "- [[A]] and my words", "my own line", "%% comment %%",
			"", "**", "*x*", "- [[A]] [[B]]", "- [A](a.md) extra", "## Heading again", "-  [[A]]"];
		const next = random(7);
		const blocks: string[] = [];
		for (let i = 0; i < 400; i++) {
			const lines = Array.from({ length: Math.floor(next() * 5) }, () => inner[Math.floor(next() * inner.length)]);
			const ending = ["\n", "\r\n", "\r"][Math.floor(next() * 3)];
			blocks.push([START, ...lines, END].join(ending) + (next() < 0.5 ? ending : ""));
		}
		const expected = JSON.parse(execFileSync(python, ["-c",
			"import json,sys\nfrom lenslink.block import is_rendered\n" +
			"json.dump([is_rendered(b) for b in json.load(sys.stdin)], sys.stdout)"],
		{ input: JSON.stringify(blocks), encoding: "utf8" })) as boolean[];
		blocks.forEach((block, i) => assert.equal(isRendered(block), expected[i], JSON.stringify(block)));
		assert.ok(expected.some((x) => x) && expected.some((x) => !x));
	});
});
