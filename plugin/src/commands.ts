/** The command palette entries. Ids are stable (hotkeys bind to them); no default hotkeys. */
import type LenslinkPlugin from "./main";

export function registerCommands(plugin: LenslinkPlugin): void {
	const { actions } = plugin;

	plugin.addCommand({
		id: "open-related-pane",
		name: "Open related notes pane",
		callback: () => void plugin.openPane(),
	});

	plugin.addCommand({
		id: "update-block",
		name: "Update related notes block in current note",
		checkCallback: (checking) => {
			const file = actions.activeNote();
			if (!file) return false;
			if (!checking) void actions.updateNote(file);
			return true;
		},
	});

	plugin.addCommand({
		id: "take-over-block",
		name: "Replace an edited related notes block in current note",
		checkCallback: (checking) => {
			const file = actions.activeNote();
			if (!file) return false;
			if (!checking) void actions.updateNote(file, true);
			return true;
		},
	});

	plugin.addCommand({
		id: "update-all-blocks",
		name: "Update related notes blocks in all notes",
		callback: () => void actions.updateAll(),
	});

	plugin.addCommand({
		id: "reindex-note",
		name: "Reindex current note",
		checkCallback: (checking) => {
			const file = actions.activeNote();
			if (!file) return false;
			if (!checking) void actions.reindex(file);
			return true;
		},
	});

	plugin.addCommand({
		id: "rebuild-index",
		name: "Rebuild the index",
		callback: () => void actions.rebuild(),
	});

	plugin.addCommand({
		id: "switch-lens",
		name: "Switch the pane's lens",
		callback: () => plugin.chooseLens(),
	});

	plugin.addCommand({
		id: "check-connection",
		name: "Check the daemon connection",
		callback: () => void actions.checkConnection(),
	});
}
