/** Plugin lifecycle only: load options, wire the client, pane, commands, status bar and events. */
import { Debouncer, Plugin, TFile, debounce } from "obsidian";
import { Actions } from "./actions";
import { DaemonStatus, LenslinkClient } from "./api";
import { registerCommands } from "./commands";
import { DEFAULT_SETTINGS, LenslinkSettingTab, LenslinkSettings } from "./settings";
import { RelatedSource, groupedSource } from "./state";
import { StatusBar } from "./status";
import { PaneHost, RelatedView, VIEW_TYPE_RELATED } from "./view";

/** Quiet time after the last edit before asking the daemon whether it is reindexing. */
const MODIFY_QUIET_MS = 3000;

export default class LenslinkPlugin extends Plugin implements PaneHost {
	settings: LenslinkSettings = { ...DEFAULT_SETTINGS };
	client!: LenslinkClient;
	actions!: Actions;
	statusBar!: StatusBar;
	source!: RelatedSource;
	private lens: string | null = null;
	private settingsChanged!: Debouncer<[], void>;

	async onload(): Promise<void> {
		await this.loadSettings();
		this.lens = this.settings.defaultLens || null;
		this.client = new LenslinkClient(() => ({ url: this.settings.daemonUrl, token: this.settings.token }));
		const statusEl = this.addStatusBarItem();
		this.statusBar = new StatusBar(statusEl, this.client, () => this.refreshPanes(true));
		this.register(() => this.statusBar.dispose());
		this.actions = new Actions(this.app, this.client, () => void this.statusBar.refresh());
		statusEl.addClass("mod-clickable");
		this.registerDomEvent(statusEl, "click", () => void this.actions.checkConnection());
		this.source = groupedSource(async () => (await this.client.lenses()).map((lens) => lens.name),
			(path, lens) => this.client.related(path, lens));
		this.settingsChanged = debounce(() => {
			void this.statusBar.refresh();
			this.refreshPanes(false);
		}, 800, true);
		this.register(() => this.settingsChanged.cancel());

		this.registerView(VIEW_TYPE_RELATED, (leaf) => new RelatedView(leaf, this));
		registerCommands(this);
		this.addSettingTab(new LenslinkSettingTab(this.app, this));

		const afterEdits = debounce(() => void this.statusBar.refresh(), MODIFY_QUIET_MS, true);
		this.register(() => afterEdits.cancel());
		this.registerEvent(this.app.vault.on("modify", (file) => {
			if (file instanceof TFile && file.extension === "md") afterEdits();
		}));
		this.registerEvent(this.app.workspace.on("active-leaf-change", () => void this.statusBar.refresh()));
		this.app.workspace.onLayoutReady(() => void this.statusBar.refresh());
	}

	async loadSettings(): Promise<void> {
		this.settings = Object.assign({}, DEFAULT_SETTINGS, await this.loadData() as Partial<LenslinkSettings>);
	}

	async saveSettings(): Promise<void> {
		await this.saveData(this.settings);
		for (const view of this.panes()) view.redraw();
		this.settingsChanged();
	}

	// -- what the pane and the settings tab ask of the plugin ---------------------------
	paneLens(): string | null {
		return this.lens;
	}

	setPaneLens(lens: string | null): void {
		this.lens = lens;
		const panes = this.panes();
		if (panes.length === 0) void this.openPane();
		for (const view of panes) void view.reload();
	}

	chooseLens(): void {
		void this.actions.run(() => this.actions.chooseLens((lens) => this.setPaneLens(lens)));
	}

	activeNote(): TFile | null {
		return this.actions.activeNote();
	}

	vaultPath(): string | null {
		return this.actions.vaultPath();
	}

	daemonStatus(): DaemonStatus | null {
		return this.statusBar.status;
	}

	linkFor(targetPath: string, sourcePath: string): string | null {
		return this.actions.linkFor(targetPath, sourcePath);
	}

	insertLink(targetPath: string, sourcePath: string): void {
		this.actions.insertLink(targetPath, sourcePath);
	}

	reindex(file: TFile): Promise<void> {
		return this.actions.reindex(file);
	}

	checkConnection(): Promise<void> {
		return this.actions.checkConnection();
	}

	/** Open panes, looked up each time (the plugin keeps no references to views). */
	panes(): RelatedView[] {
		return this.app.workspace.getLeavesOfType(VIEW_TYPE_RELATED)
			.map((leaf) => leaf.view)
			.filter((view): view is RelatedView => view instanceof RelatedView);
	}

	refreshPanes(background: boolean): void {
		for (const view of this.panes()) void (background ? view.refreshInBackground() : view.reload());
	}

	async openPane(): Promise<void> {
		const { workspace } = this.app;
		const leaf = workspace.getLeavesOfType(VIEW_TYPE_RELATED)[0] ?? workspace.getRightLeaf(false);
		if (!leaf) return;
		if (leaf.view.getViewType() !== VIEW_TYPE_RELATED) {
			await leaf.setViewState({ type: VIEW_TYPE_RELATED, active: true });
		}
		await workspace.revealLeaf(leaf);
	}
}
