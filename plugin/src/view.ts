/**
 * The related-notes pane: follows the active note and renders `PaneModel.state`
 * (no note, loading, daemon down, error, empty, results). No ranking here: the daemon's
 * answer is shown as it came, grouped by lens.
 */
import { ItemView, Keymap, TFile, WorkspaceLeaf, setIcon, setTooltip } from "obsidian";
import { DaemonStatus, RelatedNote } from "./api";
import { LenslinkSettings } from "./settings";
import { LensGroup, PaneModel, PaneState, RelatedSource, formatScore, scoreExplanation, startCommand } from "./state";

export const VIEW_TYPE_RELATED = "lenslink-related";

/** What the pane needs from the plugin. */
export interface PaneHost {
	settings: LenslinkSettings;
	source: RelatedSource;
	paneLens(): string | null;
	chooseLens(): void;
	activeNote(): TFile | null;
	vaultPath(): string | null;
	daemonStatus(): DaemonStatus | null;
	linkFor(targetPath: string, sourcePath: string): string | null;
	insertLink(targetPath: string, sourcePath: string): void;
	reindex(file: TFile): Promise<void>;
}

export class RelatedView extends ItemView {
	private readonly model: PaneModel;
	private readonly expanded = new Set<string>();

	constructor(leaf: WorkspaceLeaf, private readonly host: PaneHost) {
		super(leaf);
		this.model = new PaneModel(host.source, (state) => this.render(state));
	}

	getViewType(): string {
		return VIEW_TYPE_RELATED;
	}

	getDisplayText(): string {
		return "Related notes";
	}

	getIcon(): string {
		return "telescope";
	}

	async onOpen(): Promise<void> {
		this.contentEl.addClass("lenslink-pane");
		this.registerEvent(this.app.workspace.on("active-leaf-change", () => this.follow()));
		this.registerEvent(this.app.workspace.on("file-open", () => this.follow()));
		this.registerEvent(this.app.vault.on("rename", (file, oldPath) => {
			if (oldPath === this.model.path) void this.model.show(file.path, this.host.paneLens(), "reload");
		}));
		this.render(this.model.state);
		await this.reload();
	}

	async onClose(): Promise<void> {
		this.model.cancel();
	}

	/** Show the active note, unless the user turned following off (then only the first). */
	follow(): void {
		if (!this.host.settings.refreshOnSwitch && this.model.state.kind !== "no-note") return;
		void this.model.show(this.host.activeNote()?.path ?? null, this.host.paneLens());
	}

	/** Load the active note again, showing "loading" (refresh button, retry, lens switch). */
	reload(): Promise<void> {
		return this.model.show(this.host.activeNote()?.path ?? null, this.host.paneLens(), "reload");
	}

	/** The index changed: ask again for the shown note, keeping it on screen meanwhile. */
	refreshInBackground(): Promise<void> {
		const path = this.host.settings.refreshOnSwitch || this.model.state.kind === "no-note"
			? this.host.activeNote()?.path ?? null : this.model.path;
		return this.model.show(path, this.host.paneLens(), "background");
	}

	/** Re-render without asking the daemon (e.g. the "show scores" option changed). */
	redraw(): void {
		this.render(this.model.state);
	}

	private render(state: PaneState): void {
		const root = this.contentEl;
		root.empty();
		this.renderHeader(root, state);
		const body = root.createDiv({ cls: "lenslink-body" });
		body.setAttr("data-state", state.kind);
		switch (state.kind) {
			case "no-note":
				body.createDiv({ cls: "lenslink-message", text: "Open a note to see its related notes." });
				break;
			case "loading":
				body.createDiv({ cls: "lenslink-message", text: "Finding related notes…" });
				break;
			case "down":
				this.renderDown(body, state.message);
				break;
			case "error":
				body.createDiv({ cls: "lenslink-message lenslink-error", text: state.message });
				this.retryButton(body);
				break;
			case "empty":
				this.renderEmpty(body, state);
				break;
			case "results":
				for (const group of state.groups) this.renderGroup(body, group, state.path);
				break;
		}
	}

	private renderHeader(root: HTMLElement, state: PaneState): void {
		const header = root.createDiv({ cls: "lenslink-header" });
		const path = "path" in state ? state.path : null;
		header.createDiv({ cls: "lenslink-note", text: path ? basename(path) : "Related notes" });
		const lens = this.host.paneLens();
		const lensButton = header.createEl("button", { cls: "lenslink-lens-button", text: lens ?? "All lenses" });
		setTooltip(lensButton, "Switch lens");
		lensButton.addEventListener("click", () => this.host.chooseLens());
		const refresh = header.createEl("button", { cls: "clickable-icon lenslink-refresh" });
		setIcon(refresh, "refresh-cw");
		setTooltip(refresh, "Refresh");
		refresh.addEventListener("click", () => void this.reload());
	}

	private renderDown(body: HTMLElement, message: string): void {
		body.createDiv({ cls: "lenslink-message", text: "The lenslink daemon is not running. Start it in a terminal:" });
		const command = startCommand(this.host.vaultPath());
		const row = body.createDiv({ cls: "lenslink-command" });
		row.createEl("code", { text: command });
		const copy = row.createEl("button", { cls: "clickable-icon" });
		setIcon(copy, "copy");
		setTooltip(copy, "Copy");
		copy.addEventListener("click", () => void navigator.clipboard.writeText(command));
		body.createDiv({ cls: "lenslink-detail", text: message });
		this.retryButton(body);
	}

	private renderEmpty(body: HTMLElement, state: Extract<PaneState, { kind: "empty" }>): void {
		if (state.reason === "no-results") {
			const where = state.lens ? `through the ${state.lens} lens` : "through any lens";
			body.createDiv({ cls: "lenslink-message", text: `No related notes ${where}${state.why ? `: ${state.why}` : ""}.` });
			return;
		}
		const status = this.host.daemonStatus();
		const progress = status?.progress;
		const indexing = state.reason === "not-ready" ||
			(status !== null && (status.phase === "indexing" || status.phase === "starting"));
		body.createDiv({
			cls: "lenslink-message",
			text: indexing
				? `lenslink is indexing the vault${progress ? ` (${progress.stage} ${progress.done}/${progress.total})` : ""}; ` +
				"related notes appear when it is done."
				: "This note is not in the index: it is new, excluded, or opted out (lenslink: false).",
		});
		const file = this.host.activeNote();
		if (!indexing && file && file.path === state.path) {
			const button = body.createEl("button", { text: "Reindex this note" });
			button.addEventListener("click", () => void this.host.reindex(file));
		}
	}

	private renderGroup(body: HTMLElement, group: LensGroup, sourcePath: string): void {
		const section = body.createDiv({ cls: "lenslink-group" });
		section.createDiv({ cls: "lenslink-group-title", text: group.lens });
		const list = section.createEl("ul", { cls: "lenslink-list" });
		for (const item of group.items) this.renderItem(list, item, group.lens, sourcePath);
	}

	private renderItem(list: HTMLElement, item: RelatedNote, lens: string, sourcePath: string): void {
		const key = `${lens}\u0000${item.path}`;
		const li = list.createEl("li", { cls: "lenslink-item" });
		li.draggable = true;
		li.addEventListener("dragstart", (evt) => {
			const link = this.host.linkFor(item.path, sourcePath);
			if (link && evt.dataTransfer) {
				evt.dataTransfer.setData("text/plain", link);
				evt.dataTransfer.effectAllowed = "copy";
			}
		});
		const row = li.createDiv({ cls: "lenslink-row" });
		const toggle = row.createEl("button", { cls: "clickable-icon lenslink-toggle" });
		setIcon(toggle, this.expanded.has(key) ? "chevron-down" : "chevron-right");
		setTooltip(toggle, "Why this note");
		toggle.addEventListener("click", () => {
			if (this.expanded.has(key)) this.expanded.delete(key);
			else this.expanded.add(key);
			this.redraw();
		});
		const title = row.createEl("a", { cls: "lenslink-title", text: item.title || basename(item.path) });
		if (item.reason.passage) setTooltip(title, item.reason.passage, { placement: "left" });
		title.addEventListener("click", (evt) => {
			evt.preventDefault();
			void this.app.workspace.openLinkText(item.path, sourcePath, Keymap.isModEvent(evt));
		});
		if (item.linked) {
			const mark = row.createSpan({ cls: "lenslink-linked" });
			setIcon(mark, "link");
			setTooltip(mark, "Already linked from this note");
		}
		if (this.host.settings.showScores) {
			const score = formatScore(item.score, item.score_kind);
			if (score) {
				const badge = row.createSpan({ cls: "lenslink-score", text: score });
				setTooltip(badge, scoreExplanation(item.score_kind));
			}
		}
		const insert = row.createEl("button", { cls: "clickable-icon lenslink-insert" });
		setIcon(insert, "plus");
		setTooltip(insert, "Insert a link at the cursor");
		insert.addEventListener("click", () => this.host.insertLink(item.path, sourcePath));
		if (this.expanded.has(key)) {
			li.createDiv({ cls: "lenslink-passage", text: item.reason.passage || "No matching passage." });
		}
	}

	private retryButton(body: HTMLElement): void {
		const button = body.createEl("button", { text: "Retry" });
		button.addEventListener("click", () => void this.reload());
	}
}

function basename(path: string): string {
	return (path.split("/").pop() ?? path).replace(/\.md$/, "");
}
