/**
 * What the commands and the pane do, through Obsidian's API: update blocks (editor or
 * `Vault.process`, never behind Obsidian's back), insert links, reindex, rebuild, check.
 * The daemon ranks and renders; this file only moves its answers into notes.
 */
import { App, FileSystemAdapter, MarkdownView, Notice, TFile, normalizePath } from "obsidian";
import { LenslinkClient, errorMessage, isDaemonError } from "./api";
import { BlockError, handEdited, minimalEdit, relinkBlock, splice } from "./block";
import { ConfirmModal, LensSuggestModal, lensChoices } from "./modals";
import { startCommand } from "./state";

/** Notes queried at once while planning "update all" (the daemon is local and threaded). */
const PLAN_CONCURRENCY = 8;
const OPT_OUT = new Set(["false", "no", "off"]);

export type ApplyOutcome = "written" | "unchanged" | "edited";

interface PlannedNote {
	file: TFile;
	block: string;
}

/** What "update all" would do: notes whose block changes, and why others are left alone. */
export interface UpdatePlan {
	change: PlannedNote[];
	unchanged: number;
	skipped: { path: string; reason: string }[];
}

export class Actions {
	constructor(private readonly app: App, private readonly client: LenslinkClient,
		private readonly afterCommand: () => void) {}

	/** The vault folder on disk (desktop), for the start command in messages. */
	vaultPath(): string | null {
		const adapter = this.app.vault.adapter;
		return adapter instanceof FileSystemAdapter ? adapter.getBasePath() : null;
	}

	/** The active Markdown note, or null (also when a sidebar has focus: the last one). */
	activeNote(): TFile | null {
		const file = this.app.workspace.getActiveFile();
		return file && file.extension === "md" ? file : null;
	}

	/** A link from `sourcePath` to `targetPath`, following the user's link settings. */
	linkFor(targetPath: string, sourcePath: string): string | null {
		const target = this.app.vault.getFileByPath(targetPath);
		return target ? this.app.fileManager.generateMarkdownLink(target, sourcePath) : null;
	}

	/** The daemon's block for `file`, its links re-rendered by `generateMarkdownLink`. */
	async renderedBlock(file: TFile): Promise<string> {
		const { block } = await this.client.block(file.path);
		return relinkBlock(block, (target) => {
			const dest = this.app.metadataCache.getFirstLinkpathDest(target, file.path) ??
				this.app.vault.getFileByPath(normalizePath(target));
			return dest ? this.app.fileManager.generateMarkdownLink(dest, file.path) : null;
		});
	}

	/**
	 * Put `block` into `file`. An open note is edited in its editor (one minimal change:
	 * cursor, undo and unsaved typing survive); a closed one through `Vault.process`.
	 * Either way Obsidian makes the change, so it never reports a conflict. A block edited
	 * by hand is left as it is ("edited") unless `force`.
	 */
	async applyBlock(file: TFile, block: string, force = false): Promise<ApplyOutcome> {
		const view = this.editorFor(file);
		if (view) {
			const editor = view.editor;
			const before = editor.getValue();
			if (!force && handEdited(before, block)) return "edited";
			const after = splice(before, block);
			if (after === before) return "unchanged";
			const edit = minimalEdit(before, after);
			editor.replaceRange(edit.text, editor.offsetToPos(edit.from), editor.offsetToPos(edit.to));
			return "written";
		}
		const current = await this.app.vault.read(file);
		if (splice(current, block) === current) return "unchanged";
		if (!force && handEdited(current, block)) return "edited";
		let edited = false;
		await this.app.vault.process(file, (data) => {
			if (!force && handEdited(data, block)) {
				edited = true;  // edited meanwhile: leave it
				return data;
			}
			return splice(data, block);
		});
		return edited ? "edited" : "written";
	}

	/** Whether the note's frontmatter says `lenslink: false` (or no/off). */
	optedOut(file: TFile): boolean {
		const value: unknown = this.app.metadataCache.getFileCache(file)?.frontmatter?.lenslink;
		return value === false || (typeof value === "string" && OPT_OUT.has(value.trim().toLowerCase()));
	}

	async updateNote(file: TFile, force = false): Promise<void> {
		if (this.optedOut(file)) {
			new Notice(`${file.basename} opted out of lenslink (lenslink: false in its frontmatter).`);
			return;
		}
		await this.run(async () => {
			const outcome = await this.applyBlock(file, await this.renderedBlock(file), force);
			new Notice(outcome === "written" ? `Updated the related notes of ${file.basename}.`
				: outcome === "edited" ? `The related notes block of ${file.basename} was edited by ` +
					"hand, so it was left as it is. To replace it, run \"Replace an edited related notes block\"."
				: `The related notes of ${file.basename} are up to date.`, outcome === "edited" ? 10000 : 4000);
		});
	}

	/** Take lenslink's block out of a note (needs no daemon; e.g. a note that opted out
	 * later keeps its old block otherwise). A block edited by hand stays unless `force`. */
	async removeBlock(file: TFile, force = false): Promise<void> {
		await this.run(async () => {
			const outcome = await this.applyBlock(file, "", force);
			new Notice(outcome === "written" ? `Removed the related notes block of ${file.basename}.`
				: outcome === "edited" ? `The related notes block of ${file.basename} was edited by ` +
					"hand, so it was left as it is."
				: `${file.basename} has no related notes block.`, outcome === "edited" ? 10000 : 4000);
		});
	}

	/** Compare every note's block with the daemon's, ask once, then update the ones that differ. */
	async updateAll(): Promise<void> {
		await this.run(async () => {
			const files = this.app.vault.getMarkdownFiles();
			const progress = new Notice(`Checking ${files.length} notes…`, 0);
			let plan: UpdatePlan;
			try {
				plan = await this.plan(files);
			} finally {
				progress.hide();
			}
			const skipped = plan.skipped.length ? ` ${plan.skipped.length} skipped (${summarize(plan.skipped)}).` : "";
			if (plan.change.length === 0) {
				new Notice(`Every related notes block is up to date (${plan.unchanged} notes).${skipped}`);
				return;
			}
			const count = plural(plan.change.length, "note");
			new ConfirmModal(this.app, "Update related notes blocks",
				`${count} will change; ${plan.unchanged} already up to date.${skipped}`,
				`Update ${count}`, () => void this.run(() => this.applyPlan(plan))).open();
		});
	}

	async reindex(file: TFile): Promise<void> {
		await this.run(async () => {
			await this.client.reindex(file.path);
			new Notice(`Reindexing ${file.basename}.`);
		});
	}

	async rebuild(): Promise<void> {
		await this.run(async () => {
			await this.client.rebuild();
			new Notice("Rebuilding the index; the status bar shows the progress.");
		});
	}

	/** Let the user pick the pane's lens among the daemon's (or every lens). */
	async chooseLens(onChoose: (lens: string | null) => void): Promise<void> {
		const lenses = await this.client.lenses();
		new LensSuggestModal(this.app, lensChoices(lenses), (choice) => onChoose(choice.name)).open();
	}

	/** Health (no token), then status (token): the two ways a connection fails. */
	async checkConnection(): Promise<void> {
		await this.run(async () => {
			const health = await this.client.health();
			const status = await this.client.status();
			const here = this.vaultPath();
			const other = here && trimSlash(status.vault) !== trimSlash(here)
				? ` It serves ${status.vault}, not this vault (${here}).` : "";
			const config = status.config_error ? ` ${status.config_error}` : "";
			new Notice(`Connected to lenslink ${health.version}: ${status.notes} notes, ${status.phase}.${other}${config}`,
				config ? 10000 : undefined);
		});
	}

	/** Insert a link to `targetPath` at the cursor of the editor showing `sourcePath`. */
	insertLink(targetPath: string, sourcePath: string): void {
		const source = this.app.vault.getFileByPath(sourcePath);
		const view = source ? this.editorFor(source) : null;
		const link = this.linkFor(targetPath, sourcePath);
		if (!view || !link) {
			new Notice("Open the note in an editor to insert a link.");
			return;
		}
		view.editor.replaceSelection(link);
		view.editor.focus();
	}

	/** Run a command body: errors become one readable notice; the status bar refreshes. */
	async run(body: () => Promise<void>): Promise<void> {
		try {
			await body();
		} catch (error) {
			new Notice(this.explain(error), 10000);
		} finally {
			this.afterCommand();
		}
	}

	/** A message for an error, with the start command when the daemon is down. */
	explain(error: unknown): string {
		if (isDaemonError(error, "down")) {
			return `The lenslink daemon is not running. Start it with: ${startCommand(this.vaultPath())}`;
		}
		return errorMessage(error);
	}

	private async plan(files: TFile[]): Promise<UpdatePlan> {
		const plan: UpdatePlan = { change: [], unchanged: 0, skipped: [] };
		const queue = files.filter((file) => {
			if (!this.optedOut(file)) return true;
			plan.skipped.push({ path: file.path, reason: "opted out" });
			return false;
		});
		const worker = async () => {
			for (let file = queue.shift(); file; file = queue.shift()) {
				try {
					const block = await this.renderedBlock(file);
					const view = this.editorFor(file);
					const text = view ? view.editor.getValue() : await this.app.vault.cachedRead(file);
					if (splice(text, block) === text) plan.unchanged++;
					else if (handEdited(text, block)) plan.skipped.push({ path: file.path, reason: "edited by hand" });
					else plan.change.push({ file, block });
				} catch (error) {
					if (error instanceof BlockError) {
						plan.skipped.push({ path: file.path, reason: "damaged block" });
					} else if (isDaemonError(error, "refused") && error.code === "NotEmbedded") {
						plan.skipped.push({ path: file.path, reason: "not embedded yet" });
					} else if (isDaemonError(error, "not-found") || isDaemonError(error, "refused")) {
						plan.skipped.push({ path: file.path, reason: "not in the index" });
					} else {
						queue.length = 0;  // daemon down or token wrong: stop asking
						throw error;
					}
				}
			}
		};
		await Promise.all(Array.from({ length: PLAN_CONCURRENCY }, worker));
		plan.change.sort((a, b) => a.file.path.localeCompare(b.file.path));
		return plan;
	}

	private async applyPlan(plan: UpdatePlan): Promise<void> {
		let written = 0;
		const failed: string[] = [];
		for (const { file, block } of plan.change) {
			try {
				if (await this.applyBlock(file, block) === "written") written++;
			} catch (error) {
				failed.push(`${file.path}: ${errorMessage(error)}`);
			}
		}
		const failures = failed.length ? ` ${failed.length} failed: ${failed.slice(0, 3).join("; ")}` : "";
		new Notice(`Updated ${plural(written, "note")}.${failures}`, failed.length ? 10000 : 4000);
	}

	private editorFor(file: TFile): MarkdownView | null {
		for (const leaf of this.app.workspace.getLeavesOfType("markdown")) {
			if (leaf.view instanceof MarkdownView && leaf.view.file?.path === file.path) return leaf.view;
		}
		return null;
	}
}

function plural(count: number, noun: string): string {
	return `${count} ${noun}${count === 1 ? "" : "s"}`;
}

function summarize(skipped: { reason: string }[]): string {
	const counts = new Map<string, number>();
	for (const { reason } of skipped) counts.set(reason, (counts.get(reason) ?? 0) + 1);
	return [...counts].map(([reason, count]) => `${count} ${reason}`).join(", ");
}

function trimSlash(path: string): string {
	return path.replace(/[\\/]+$/, "");
}
