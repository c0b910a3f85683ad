import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
	BlockError, END, START, blockTargets, currentBlock, findBlock, handEdited, isRendered, linkTarget,
	minimalEdit, relinkBlock, splice,
} from "../src/block";

const BLOCK = `${START}\n## Related notes\n*topic*\n- [[Sourdough]]\n- [[Fermentation]]\n${END}\n`;
const NEWER = `${START}\n## Related notes\n*topic*\n- [[Bread]]\n${END}\n`;

/** Notes in every shape the splice must respect: endings, final newline, BOM, frontmatter. */
const SHAPES = [
	"", "\ufeff", "one line", "one line\n", "a\nb\n", "a\nb", "a\r\nb\r\n", "a\r\nb", "a\rb\r",
	"\ufeff---\ntitle: x # keep this comment\n---\nbody\n", "mixed\r\nends\nhere\r\n", "trailing blanks\n\n\n",
	"ünïcödé 🎉\n", "```\ncode\n```\n", "> quote\n",
];

describe("splice", () => {
	it("appends with one blank line, in the note's own line endings", () => {
		assert.equal(splice("a\nb\n", BLOCK), `a\nb\n\n${BLOCK}`);
		assert.equal(splice("a\r\nb\r\n", BLOCK), `a\r\nb\r\n\r\n${BLOCK.replace(/\n/g, "\r\n")}`);
		assert.equal(splice("", BLOCK), BLOCK);
		assert.equal(splice("\ufeff", BLOCK), `\ufeff${BLOCK}`);
	});

	it("mirrors a missing final newline", () => {
		assert.equal(splice("a\nb", BLOCK), `a\nb\n\n${BLOCK.slice(0, -1)}`);
		assert.equal(splice("a\r\nb", BLOCK), `a\r\nb\r\n\r\n${BLOCK.slice(0, -1).replace(/\n/g, "\r\n")}`);
	});

	it("replaces only the block, keeping every byte around it", () => {
		const before = "\ufeff---\nz: 1   # comment\na: [2, 1]\n---\r\nintro  \n\n";
		const afterText = "\n\nafter the block\r\nno final newline";
		const text = before + BLOCK + afterText;
		const result = splice(text, NEWER);
		assert.equal(result, before + NEWER + afterText);
		assert.ok(result.startsWith(before) && result.endsWith(afterText));
	});

	it("keeps the endings of an existing block", () => {
		const crlf = BLOCK.replace(/\n/g, "\r\n");
		assert.equal(splice(`x\n\n${crlf}`, NEWER), `x\n\n${NEWER.replace(/\n/g, "\r\n")}`);
		const noFinal = `x\n\n${BLOCK.slice(0, -1)}`;
		assert.equal(splice(noFinal, NEWER), `x\n\n${NEWER.slice(0, -1)}`);
	});

	it("is idempotent, and removing an appended block restores the note exactly", () => {
		for (const text of SHAPES) {
			const once = splice(text, BLOCK);
			assert.equal(splice(once, BLOCK), once, JSON.stringify(text));
			assert.equal(splice(splice(once, NEWER), BLOCK), once, JSON.stringify(text));
			assert.equal(splice(once, ""), text, JSON.stringify(text));
			const finalNewline = /[\r\n]$/.test(text) || text.replace(/^\ufeff/, "") === "";
			assert.equal(currentBlock(once).replace(/\r\n?/g, "\n"), finalNewline ? BLOCK : BLOCK.slice(0, -1));
		}
	});

	it("leaves a note without a block alone when asked to remove it", () => {
		for (const text of SHAPES) assert.equal(splice(text, ""), text);
	});

	it("accepts markers with spaces or tabs around them, nothing else on the line", () => {
		const text = `x\n  ${START}\t\n- [[Old]]\n\t${END} \ny\n`;
		assert.equal(splice(text, NEWER), `x\n${NEWER}y\n`);
		const prose = `x\nsee ${START} here\n`;
		assert.equal(findBlock(prose), null);
	});

	it("ignores markers inside code fences, also in blockquotes", () => {
		const example = `intro\n\`\`\`md\n${START}\n- [[X]]\n${END}\n\`\`\`\n`;
		assert.equal(findBlock(example), null);
		assert.equal(splice(example, BLOCK), `${example}\n${BLOCK}`);
		const quoted = `> ~~~\n> ${START}\n> ~~~\n`;
		assert.equal(findBlock(quoted), null);
		const inline = "```js `x` ```\n" + BLOCK;   // a backtick in the info string: not a fence
		assert.deepEqual(findBlock(inline), { start: 14, end: inline.length });
	});

	it("refuses to append inside an unclosed fence", () => {
		assert.throws(() => splice("```\nnever closed\n", BLOCK), BlockError);
	});

	it("refuses damaged or duplicated blocks instead of guessing", () => {
		assert.throws(() => splice(`${START}\n- [[X]]\n`, BLOCK), /start marker without end \(line 1\)/);
		assert.throws(() => splice(`a\n${END}\n`, BLOCK), /end marker without start \(line 2\)/);
		assert.throws(() => splice(`${BLOCK}\n${BLOCK}`, BLOCK), /two lenslink blocks \(starting at lines 1, 8\)/);
		assert.throws(() => splice(`${START}\n${START}\n${END}\n`, BLOCK), /another start marker at line 2/);
	});

	it("only accepts rendered blocks", () => {
		assert.throws(() => splice("x\n", "- [[X]]\n"), /rendered lenslink block/);
		assert.throws(() => splice("x\n", `${START}\n${START}\n${END}\n`), /rendered lenslink block/);
	});
});

describe("hand edits", () => {
	it("knows lenslink's own form from a block a person edited", () => {
		const ours = `${START}\n## Related notes\n*topic*\n- [[A]]\n- [B](B.md)\n${END}\n`;
		assert.equal(isRendered(ours), true);
		assert.equal(isRendered(ours.replace("- [[A]]", "- [[A]] is where it started")), false);
		assert.equal(isRendered(ours.replace(END, `my remark\n${END}`)), false);
		assert.equal(isRendered(ours.replace(/\n/g, "\r\n")), true);
		assert.equal(isRendered(ours.replace("- [[A]]", "- [[A|my alias]]")), false);
		assert.equal(isRendered(ours.replace("- [B](B.md)", "- [Mine](B.md)")), false);
		assert.equal(isRendered(ours.replace("- [B](B.md)", "- [C# x](C%23%20x.md)")), true);
	});
	it("leaves an edited block alone and replaces a rendered one", () => {
		const block = `${START}\n- [[New]]\n${END}\n`;
		const rendered = `note\n\n${START}\n- [[Old]]\n${END}\n`;
		const edited = `note\n\n${START}\n- [[Old]] (keep this)\n${END}\n`;
		assert.equal(handEdited(rendered, block), false);
		assert.equal(handEdited(edited, block), true);
		assert.equal(handEdited("no block yet\n", block), false);
		assert.equal(handEdited(`note\n\n${block}`, block), false);  // unchanged: nothing to refuse
	});
});

describe("links in the block", () => {
	it("finds the target of wikilinks and Markdown links", () => {
		assert.equal(linkTarget("[[Sourdough]]"), "Sourdough");
		assert.equal(linkTarget("[[topics/Sour dough|alias]]"), "topics/Sour dough");
		assert.equal(linkTarget("[[Note#Heading]]"), "Note");
		assert.equal(linkTarget("[Mexico City](cities/Mexico%20City.md)"), "cities/Mexico City.md");
		assert.equal(linkTarget("[a \\[b\\]](x%28y%29.md)"), "x(y).md");
		assert.equal(linkTarget("[bad](%E0%A4%A.md)"), "%E0%A4%A.md");
		assert.equal(linkTarget("plain text"), null);
	});

	it("re-renders each link and keeps markers, heading, labels and endings", () => {
		const block = `${START}\r\n## Related notes\r\n*topic*\r\n- [[Sourdough]]\r\n- [[Unknown]]\r\n*project*\r\n- [Japan trip](projects/Japan%20trip.md)\r\n${END}\r\n`;
		const relinked = relinkBlock(block, (target) => target === "Unknown" ? null : `[${target}](<${target}>)`);
		assert.equal(relinked, `${START}\r\n## Related notes\r\n*topic*\r\n- [Sourdough](<Sourdough>)\r\n- [[Unknown]]\r\n` +
			`*project*\r\n- [projects/Japan trip.md](<projects/Japan trip.md>)\r\n${END}\r\n`);
		assert.deepEqual(blockTargets(block), ["Sourdough", "Unknown", "projects/Japan trip.md"]);
		assert.equal(relinkBlock("", () => "x"), "");
	});

	it("keeps a block unchanged when links render as they were", () => {
		assert.equal(relinkBlock(BLOCK, (target) => `[[${target}]]`), BLOCK);
	});
});

describe("minimalEdit", () => {
	it("turns the old text into the new with one replacement", () => {
		const pairs: [string, string][] = [["", ""], ["abc", "abc"], ["abc", "abXc"], ["a\r\nb", "a\nb"], ["x🎉y", "x🎊y"],
			["a\nb\n", splice("a\nb\n", BLOCK)], [splice("a\r\nb", BLOCK), splice(splice("a\r\nb", BLOCK), NEWER)], ["aaa", "aa"]];
		for (const [before, after] of pairs) {
			const edit = minimalEdit(before, after);
			assert.equal(before.slice(0, edit.from) + edit.text + before.slice(edit.to), after, JSON.stringify([before, after]));
			assert.ok(edit.from <= edit.to);
		}
		assert.deepEqual(minimalEdit("a\nb\n", `a\nb\n\n${BLOCK}`), { from: 4, to: 4, text: `\n${BLOCK}` });
	});

	it("never splits a surrogate pair or a CRLF", () => {
		const emoji = minimalEdit("x🎉y", "x🎊y");
		assert.deepEqual(emoji, { from: 1, to: 3, text: "🎊" });
		const crlf = minimalEdit("a\r\nb", "a\r\rb");
		assert.equal(crlf.from, 1);
	});
});
