/**
 * A stand-in for the `obsidian` module when tests run in Node (the test bundler aliases
 * `obsidian` to this file): just enough of Obsidian for the plugin's modules to load and for
 * its commands to run against a vault folder on disk. Not a model of Obsidian's behaviour
 * beyond what the tests name.
 *
 * `requestUrl` behaves like Obsidian's: it rejects when no HTTP response arrives, and with
 * `throw: false` it resolves for 4xx/5xx too. Each call's parameters are recorded.
 */
import { readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join, posix, sep } from "node:path";
import type { RequestUrlParam } from "obsidian";

// -- network --------------------------------------------------------------------------

export const requestLog: RequestUrlParam[] = [];

export async function requestUrl(request: RequestUrlParam): Promise<{ status: number; text: string }> {
	requestLog.push(request);
	const headers: Record<string, string> = { ...request.headers };
	if (request.contentType) headers["Content-Type"] = request.contentType;
	const response = await fetch(request.url, {
		method: request.method ?? "GET",
		headers,
		body: typeof request.body === "string" ? request.body : undefined,
	});
	const text = await response.text();
	if (request.throw !== false && response.status >= 400) {
		throw new Error(`Request failed, status ${response.status}`);
	}
	return { status: response.status, text };
}

// -- DOM-ish --------------------------------------------------------------------------

/** An element that records text, classes and attributes (no layout, no events). */
export class FakeEl {
	text = "";
	classes = new Set<string>();
	attrs: Record<string, string> = {};
	children: FakeEl[] = [];
	listeners: Record<string, (evt: unknown) => void> = {};

	constructor(readonly tag = "div") {}

	createEl(tag: string, options?: { text?: string; cls?: string }): FakeEl {
		return this.append(tag, options);
	}

	createDiv(options?: { text?: string; cls?: string }): FakeEl {
		return this.append("div", options);
	}

	createSpan(options?: { text?: string; cls?: string }): FakeEl {
		return this.append("span", options);
	}

	private append(tag: string, options?: { text?: string; cls?: string }): FakeEl {
		const child = new FakeEl(tag);
		if (options?.text) child.text = options.text;
		if (options?.cls) options.cls.split(" ").forEach((c) => child.classes.add(c));
		this.children.push(child);
		return child;
	}

	empty(): void {
		this.children = [];
		this.text = "";
	}

	setText(text: string): void {
		this.text = text;
	}

	addClass(cls: string): void {
		this.classes.add(cls);
	}

	toggleClass(cls: string, on: boolean): void {
		if (on) this.classes.add(cls);
		else this.classes.delete(cls);
	}

	setAttr(name: string, value: string): void {
		this.attrs[name] = value;
	}

	addEventListener(type: string, listener: (evt: unknown) => void): void {
		this.listeners[type] = listener;
	}

	/** All text in this element and below, for assertions. */
	allText(): string {
		return [this.text, ...this.children.map((c) => c.allText())].filter(Boolean).join("\n");
	}
}

export function setIcon(): void {}
export function setTooltip(): void {}

export const Keymap = { isModEvent: () => false };

export function normalizePath(path: string): string {
	return path.replace(/\\/g, "/").replace(/\/+/g, "/").replace(/^\/|\/$/g, "");
}

export function debounce<T extends unknown[]>(cb: (...args: T) => unknown, timeout = 0) {
	let timer: ReturnType<typeof setTimeout> | undefined;
	const run = (...args: T) => {
		clearTimeout(timer);
		timer = setTimeout(() => cb(...args), timeout);
		return run;
	};
	run.cancel = () => {
		clearTimeout(timer);
		return run;
	};
	run.run = () => undefined;
	return run;
}

// -- notices and modals ---------------------------------------------------------------

export const notices: string[] = [];

export class Notice {
	constructor(message: string) {
		notices.push(message);
	}

	hide(): void {}
}

export class Modal {
	static opened: Modal[] = [];
	contentEl = new FakeEl();
	title = "";

	constructor(readonly app: App) {}

	open(): void {
		Modal.opened.push(this);
		this.onOpen();
	}

	close(): void {
		this.onClose();
	}

	setTitle(title: string): this {
		this.title = title;
		return this;
	}

	onOpen(): void {}
	onClose(): void {}
}

export class FuzzySuggestModal<T> extends Modal {
	setPlaceholder(): void {}
	getItems(): T[] {
		return [];
	}
}

export class FakeButton {
	text = "";
	cta = false;
	handler: () => void = () => undefined;

	setButtonText(text: string): this {
		this.text = text;
		return this;
	}

	setCta(): this {
		this.cta = true;
		return this;
	}

	onClick(handler: () => void): this {
		this.handler = handler;
		return this;
	}
}

export class Setting {
	static buttons: FakeButton[] = [];

	constructor(readonly containerEl: FakeEl) {}

	addButton(build: (button: FakeButton) => unknown): this {
		const button = new FakeButton();
		Setting.buttons.push(button);
		build(button);
		return this;
	}
}

// -- files, views, the app ------------------------------------------------------------

export class TFile {
	readonly name: string;
	readonly basename: string;
	readonly extension: string;

	constructor(readonly path: string) {
		this.name = posix.basename(path);
		this.extension = this.name.includes(".") ? this.name.split(".").pop() ?? "" : "";
		this.basename = this.extension ? this.name.slice(0, -this.extension.length - 1) : this.name;
	}
}

export class FileSystemAdapter {
	constructor(private readonly root: string) {}

	getBasePath(): string {
		return this.root;
	}
}

/** A CodeMirror-like editor over a string: positions are {line, ch} over "\n" lines. */
export class FakeEditor {
	constructor(public value: string) {}

	getValue(): string {
		return this.value;
	}

	offsetToPos(offset: number): { line: number; ch: number } {
		const before = this.value.slice(0, offset).split("\n");
		return { line: before.length - 1, ch: before[before.length - 1].length };
	}

	posToOffset(pos: { line: number; ch: number }): number {
		const lines = this.value.split("\n");
		return lines.slice(0, pos.line).reduce((sum, line) => sum + line.length + 1, 0) + pos.ch;
	}

	replaceRange(text: string, from: { line: number; ch: number }, to: { line: number; ch: number }): void {
		this.value = this.value.slice(0, this.posToOffset(from)) + text + this.value.slice(this.posToOffset(to));
	}

	replaceSelection(text: string): void {
		this.value += text;
	}

	focus(): void {}
}

export class MarkdownView {
	constructor(public file: TFile, readonly editor: FakeEditor) {}
}

export class ItemView {
	contentEl = new FakeEl();
	app: App;

	constructor(readonly leaf: { app: App }) {
		this.app = leaf.app;
	}

	registerEvent(): void {}
}

export class PluginSettingTab {
	containerEl = new FakeEl();

	constructor(readonly app: App, readonly plugin: unknown) {}
}

type Listener = (...args: unknown[]) => unknown;

class Events {
	listeners: Record<string, Listener[]> = {};

	on(name: string, callback: Listener): { name: string } {
		(this.listeners[name] ??= []).push(callback);
		return { name };
	}

	trigger(name: string, ...args: unknown[]): void {
		for (const callback of this.listeners[name] ?? []) callback(...args);
	}
}

/** A vault over a folder on disk: Markdown files outside dot-folders. */
export class FakeVault extends Events {
	adapter: FileSystemAdapter;

	constructor(readonly root: string) {
		super();
		this.adapter = new FileSystemAdapter(root);
	}

	getMarkdownFiles(): TFile[] {
		return (readdirSync(this.root, { recursive: true, encoding: "utf8" }))
			.map((path) => path.split(sep).join("/"))
			.filter((path) => path.endsWith(".md") && !path.split("/").some((part) => part.startsWith(".")))
			.sort()
			.map((path) => new TFile(path));
	}

	getFileByPath(path: string): TFile | null {
		return this.getMarkdownFiles().find((file) => file.path === path) ?? null;
	}

	async read(file: TFile): Promise<string> {
		return readFileSync(join(this.root, file.path), "utf8");
	}

	cachedRead(file: TFile): Promise<string> {
		return this.read(file);
	}

	async process(file: TFile, fn: (data: string) => string): Promise<string> {
		const data = fn(await this.read(file));
		writeFileSync(join(this.root, file.path), data);
		return data;
	}
}

export class App {
	vault: FakeVault;
	workspace: Events & {
		activeFile: TFile | null;
		markdownViews: MarkdownView[];
		getActiveFile(): TFile | null;
		getLeavesOfType(type: string): { view: unknown }[];
		onLayoutReady(callback: () => void): void;
	};
	metadataCache: {
		getFileCache(file: TFile): { frontmatter?: Record<string, unknown> } | null;
		getFirstLinkpathDest(linkpath: string, sourcePath: string): TFile | null;
	};
	fileManager: { generateMarkdownLink(file: TFile, sourcePath: string): string };

	constructor(root: string) {
		const vault = new FakeVault(root);
		this.vault = vault;
		const workspace = Object.assign(new Events(), {
			activeFile: null as TFile | null,
			markdownViews: [] as MarkdownView[],
			getActiveFile: () => workspace.activeFile,
			getLeavesOfType: (type: string) => type === "markdown" ? workspace.markdownViews.map((view) => ({ view })) : [],
			onLayoutReady: (callback: () => void) => callback(),
		});
		this.workspace = workspace;
		this.metadataCache = {
			// Enough frontmatter for `lenslink: false`: `key: value` lines between --- fences.
			getFileCache: (file) => {
				const text = readFileSync(join(root, file.path), "utf8");
				const match = /^---\r?\n([\s\S]*?)\r?\n---/.exec(text);
				if (!match) return {};
				const frontmatter: Record<string, unknown> = {};
				for (const line of match[1].split(/\r?\n/)) {
					const pair = /^(\w+):\s*(.*)$/.exec(line);
					if (pair) frontmatter[pair[1]] = pair[2] === "false" ? false : pair[2];
				}
				return { frontmatter };
			},
			getFirstLinkpathDest: (linkpath) => {
				const wanted = linkpath.endsWith(".md") ? linkpath : `${linkpath}.md`;
				return vault.getMarkdownFiles().find((file) => file.path === wanted || file.name === wanted) ?? null;
			},
		};
		// Markdown links with full paths, so tests see the plugin's relinking at work.
		this.fileManager = {
			generateMarkdownLink: (file) => `[${file.basename}](${file.path.replace(/ /g, "%20")})`,
		};
	}
}

export interface FakeCommand {
	id: string;
	name: string;
	hotkeys?: unknown[];
	callback?: () => unknown;
	checkCallback?: (checking: boolean) => boolean | void;
}

/** Records what a plugin registers; `cleanups` run on unload like Obsidian's Component. */
export class Plugin {
	commands: FakeCommand[] = [];
	views: Record<string, unknown> = {};
	settingTabs: unknown[] = [];
	statusBarItems: FakeEl[] = [];
	cleanups: (() => void)[] = [];
	data: unknown = null;

	constructor(readonly app: App, readonly manifest: { id: string }) {}

	addCommand(command: FakeCommand): FakeCommand {
		this.commands.push(command);
		return command;
	}

	registerView(type: string, factory: unknown): void {
		this.views[type] = factory;
	}

	addSettingTab(tab: unknown): void {
		this.settingTabs.push(tab);
	}

	addStatusBarItem(): FakeEl {
		const item = new FakeEl();
		this.statusBarItems.push(item);
		return item;
	}

	registerEvent(): void {}

	registerDomEvent(el: FakeEl, type: string, callback: (evt: unknown) => void): void {
		el.addEventListener(type, callback);
	}

	register(cleanup: () => void): void {
		this.cleanups.push(cleanup);
	}

	async loadData(): Promise<unknown> {
		return this.data;
	}

	async saveData(data: unknown): Promise<void> {
		this.data = data;
	}

	unload(): void {
		for (const cleanup of this.cleanups) cleanup();
	}
}
