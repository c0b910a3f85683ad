/**
 * The managed "Related notes" block in a note's text: find it, splice a new one in,
 * re-render its links. Pure string functions, no Obsidian imports, so Node tests cover them.
 *
 * Same rules as the daemon's `lenslink/block.py`, so a block written by the plugin and one
 * written by the daemon are byte-identical and either side sees "unchanged":
 * - a marker counts only alone on its line (spaces/tabs around it allowed) and outside
 *   fenced code (``` or ~~~, also inside blockquotes);
 * - lines end with CRLF, LF or a lone CR; characters outside the block never change;
 * - block lines use the note's dominant line ending (LF on a tie or when there is none);
 * - appending: to an empty note just the block plus a newline; to a note ending with a line
 *   ending, that ending once more (one blank line) then the block plus a newline; to a note
 *   without a final line ending, two line endings then the block without a final newline.
 *   Removing a block that ends the text undoes exactly that separator.
 */

export const START = "%% lenslink:start %%";
export const END = "%% lenslink:end %%";

/** A damaged or ambiguous block, or a place we must not write into: never written over. */
export class BlockError extends Error {
	constructor(message: string) {
		super(message);
		this.name = "BlockError";
	}
}

/** Character span of the block: START line start to END line end (with its ending). */
export interface BlockSpan {
	start: number;
	end: number;
}

/** Lines with their endings, splitting only on CRLF, LF and lone CR. */
export function splitLines(text: string): string[] {
	return text.match(/[^\r\n]*(?:\r\n|\n|\r)|[^\r\n]+$/g) ?? [];
}

function endingOf(line: string): string {
	return line.slice(line.replace(/[\r\n]+$/, "").length);
}

function withoutEnding(line: string): string {
	return line.replace(/[\r\n]+$/, "");
}

function trailingEndingLength(text: string): number {
	if (text.endsWith("\r\n")) return 2;
	return text.endsWith("\n") || text.endsWith("\r") ? 1 : 0;
}

/** The most frequent line ending; LF when there is none or on a tie with LF. */
function dominantEnding(text: string): string {
	const counts = new Map<string, number>([["\n", 0], ["\r\n", 0], ["\r", 0]]);
	for (const match of text.matchAll(/\r\n|\n|\r/g)) {
		counts.set(match[0], (counts.get(match[0]) ?? 0) + 1);
	}
	let best = "\n";
	for (const [ending, count] of counts) {
		if (count > (counts.get(best) ?? 0)) best = ending;
	}
	return best;
}

function stripSpaces(value: string): string {
	return value.replace(/^[ \t]+|[ \t]+$/g, "");
}

interface Marker {
	marker: string;
	start: number;
	end: number;
}

/**
 * Markers with their offsets, and whether the text ends inside a code fence. Fences are
 * recognised generously (any indent, any blockquote depth): taking a user's code example
 * for our block could overwrite it, while missing our block costs at most a duplicate.
 */
function scan(text: string): { markers: Marker[]; openFence: boolean } {
	const markers: Marker[] = [];
	let fence: string | null = null;
	let offset = 0;
	splitLines(text).forEach((line, index) => {
		let start = offset;
		offset += line.length;
		let content = withoutEnding(line);
		if (index === 0) {
			const unbommed = content.replace(/^\ufeff+/, "");
			start += content.length - unbommed.length;
			content = unbommed;
		}
		const unquoted = content.replace(/^[ \t]*(?:>[ \t]*)*/, "");
		if (fence !== null) {
			const closing = unquoted.replace(/[ \t]+$/, "");
			if (closing.length >= fence.length && closing === fence.charAt(0).repeat(closing.length)) {
				fence = null;
			}
			return;
		}
		const opening = /^(`{3,}|~{3,})([\s\S]*)$/.exec(unquoted);
		if (opening && !(opening[1].startsWith("`") && opening[2].includes("`"))) {
			fence = opening[1];
			return;
		}
		const bare = stripSpaces(content);
		if (bare === START || bare === END) markers.push({ marker: bare, start, end: offset });
	});
	return { markers, openFence: fence !== null };
}

/** The span of the one managed block, or null; BlockError when markers are damaged. */
export function findBlock(text: string): BlockSpan | null {
	const lineOf = (offset: number) => splitLines(text.slice(0, offset)).length + 1;
	const fix = `; fix the markers by hand: ${START} before the block, ${END} after it`;
	const blocks: BlockSpan[] = [];
	let openAt: number | null = null;
	for (const { marker, start, end } of scan(text).markers) {
		if (marker === START) {
			if (openAt !== null) {
				throw new BlockError(`start marker without end (line ${lineOf(openAt)}; ` +
					`another start marker at line ${lineOf(start)})${fix}`);
			}
			openAt = start;
		} else if (openAt === null) {
			throw new BlockError(`end marker without start (line ${lineOf(start)})${fix}`);
		} else {
			blocks.push({ start: openAt, end });
			openAt = null;
		}
	}
	if (openAt !== null) throw new BlockError(`start marker without end (line ${lineOf(openAt)})${fix}`);
	if (blocks.length > 1) {
		const lines = blocks.map((b) => lineOf(b.start)).join(", ");
		throw new BlockError(`two lenslink blocks (starting at lines ${lines}); remove one by hand`);
	}
	return blocks[0] ?? null;
}

/** The current block's text (markers included), "" when there is none. */
export function currentBlock(text: string): string {
	const found = findBlock(text);
	return found ? text.slice(found.start, found.end) : "";
}

// The links lenslink writes: `[[path]]` (no alias, heading or block part) or
// `[title](encoded path)` whose title (brackets escaped) is the path's file stem.
const WIKI_ITEM = /^- \[\[[^[\]|#^\n]+\]\]$/;
const MARKDOWN_ITEM = /^- \[((?:[^[\]\\\n]|\\.)*)\]\(([^\s()<>]+)\)$/;

/** Percent-decoding as Python's urllib.parse.unquote: invalid escapes stay as written. */
function unquote(text: string): string {
	return text.replace(/(?:%[0-9A-Fa-f]{2})+/g, (run) => {
		const bytes = new Uint8Array(run.length / 3);
		for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(run.slice(3 * i + 1, 3 * i + 3), 16);
		return new TextDecoder("utf-8").decode(bytes);
	});
}

/** The file name without its last suffix, as Python's PurePosixPath(path).stem. */
function stem(path: string): string {
	const name = path.split("/").filter((part) => part !== "" && part !== ".").pop() ?? "";
	const dot = name.lastIndexOf(".");
	return dot > 0 && dot < name.length - 1 ? name.slice(0, dot) : name;
}

function isLinkItem(line: string): boolean {
	if (WIKI_ITEM.test(line)) return true;
	const found = MARKDOWN_ITEM.exec(line);
	return found !== null && found[1].replace(/\\(.)/g, "$1") === stem(unquote(found[2]));
}

/**
 * Whether a block (START through END) is in the form lenslink writes: an optional
 * `## heading`, `*lens*` labels and `- link` lines of one link each, as lenslink
 * formats links. A block a person edited (a comment, a line of text, words after a
 * link, an alias) is not, and is left alone unless taken over. Same rule as
 * `lenslink.block.is_rendered` without the blocks the daemon remembers writing.
 */
export function isRendered(block: string): boolean {
	const lines = splitLines(block).map(withoutEnding);
	if (lines.length < 2 || lines[0] !== START || lines[lines.length - 1] !== END) return false;
	return lines.slice(1, -1).every((line, n) => isLinkItem(line) ||
		(n === 0 && line.startsWith("## ")) || (line.length > 2 && line.startsWith("*") && line.endsWith("*")));
}

/** Whether putting `block` into `text` would replace a block someone edited by hand. */
export function handEdited(text: string, block: string): boolean {
	const current = currentBlock(text);
	return current !== "" && !isRendered(current) && splice(text, block) !== text;
}

/** The block plus the separator appending added, when the block ends the text. */
function removalSpan(text: string, block: BlockSpan): BlockSpan {
	let start = block.start;
	if (block.end === text.length) {
		const before = text.slice(0, start);
		const first = trailingEndingLength(before);
		const second = first ? trailingEndingLength(before.slice(0, before.length - first)) : 0;
		if (first && second) {
			const hasFinalEnding = trailingEndingLength(text.slice(block.start, block.end)) > 0;
			start -= hasFinalEnding ? first : first + second;
		}
	}
	return { start, end: block.end };
}

function blockLines(block: string): string[] {
	const lines = splitLines(block).map(withoutEnding);
	if (block && (lines.length < 2 || lines[0] !== START || lines[lines.length - 1] !== END ||
		lines.slice(1, -1).some((line) => [START, END].includes(stripSpaces(line))))) {
		throw new Error("block text must be a rendered lenslink block (START ... END lines)");
	}
	return lines;
}

/**
 * Put `block` into `text`: replace our block in place, or append it; "" removes it.
 * Only our block's lines and the separator described above change. BlockError on a
 * damaged block, or when appending would land inside an unclosed code fence.
 */
export function splice(text: string, block: string): string {
	const lines = blockLines(block);
	const found = findBlock(text);
	if (found === null) {
		if (lines.length === 0) return text;
		if (scan(text).openFence) throw new BlockError("note ends inside an unclosed code fence; close it first");
		const newline = dominantEnding(text);
		const rendered = lines.join(newline);
		if (text.replace(/^\ufeff+/, "") === "") return text + rendered + newline;
		const endingLength = trailingEndingLength(text);
		if (endingLength) return text + text.slice(-endingLength) + rendered + newline;
		return text + newline + newline + rendered;
	}
	if (lines.length === 0) {
		const { start, end } = removalSpan(text, found);
		return text.slice(0, start) + text.slice(end);
	}
	const old = splitLines(text.slice(found.start, found.end));
	const rendered = lines.join(endingOf(old[0])) + endingOf(old[old.length - 1]);
	return text.slice(0, found.start) + rendered + text.slice(found.end);
}

/** The link target of one rendered link (`[[path|alias]]` or `[label](url)`), or null. */
export function linkTarget(link: string): string | null {
	const wiki = /^!?\[\[([^\]|#^]+)(?:[#^][^\]|]*)?(?:\|[^\]]*)?\]\]$/.exec(link);
	if (wiki) return wiki[1].trim();
	const markdown = /^\[(?:\\.|[^\]\\])*\]\((<[^>]*>|[^)\s]*)\)$/.exec(link);
	if (!markdown) return null;
	const url = markdown[1].replace(/^<|>$/g, "");
	try {
		return decodeURIComponent(url);
	} catch {
		return url;
	}
}

/**
 * The block with each `- link` line re-rendered by `relink(target)` (e.g. Obsidian's
 * `generateMarkdownLink`, which follows the user's link settings). Markers, heading, lens
 * labels and line endings stay as the daemon rendered them; a link `relink` cannot
 * resolve (null) is kept as it was.
 */
export function relinkBlock(block: string, relink: (target: string) => string | null): string {
	return splitLines(block).map((line) => {
		const match = /^- ([\s\S]*?)(\r\n|\n|\r)?$/.exec(line);
		if (!match) return line;
		const target = linkTarget(match[1]);
		const replacement = target === null ? null : relink(target);
		return replacement ? `- ${replacement.replace(/[\r\n]+/g, " ")}${match[2] ?? ""}` : line;
	}).join("");
}

/** The link targets listed in a rendered block, in order. */
export function blockTargets(block: string): string[] {
	return splitLines(block)
		.map((line) => /^- ([\s\S]*?)[\r\n]*$/.exec(line)?.[1] ?? null)
		.map((link) => (link === null ? null : linkTarget(link)))
		.filter((target): target is string => target !== null);
}

/** One replacement that turns `before` into `after`: `before[from, to)` becomes `text`. */
export interface TextEdit {
	from: number;
	to: number;
	text: string;
}

function splitsPair(text: string, at: number): boolean {
	if (at <= 0 || at >= text.length) return false;
	const prev = text.charCodeAt(at - 1);
	const next = text.charCodeAt(at);
	const surrogates = prev >= 0xd800 && prev <= 0xdbff && next >= 0xdc00 && next <= 0xdfff;
	return surrogates || (prev === 13 && next === 10);
}

/**
 * The smallest single edit from `before` to `after` (common prefix and suffix kept), never
 * splitting a surrogate pair or a CRLF, so an editor keeps the cursor and undo history.
 */
export function minimalEdit(before: string, after: string): TextEdit {
	const limit = Math.min(before.length, after.length);
	let prefix = 0;
	while (prefix < limit && before[prefix] === after[prefix]) prefix++;
	while (prefix > 0 && (splitsPair(before, prefix) || splitsPair(after, prefix))) prefix--;
	let suffix = 0;
	while (suffix < limit - prefix &&
		before[before.length - 1 - suffix] === after[after.length - 1 - suffix]) suffix++;
	while (suffix > 0 && (splitsPair(before, before.length - suffix) ||
		splitsPair(after, after.length - suffix))) suffix--;
	return { from: prefix, to: before.length - suffix, text: after.slice(prefix, after.length - suffix) };
}
