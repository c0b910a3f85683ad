/** The command palette entries. Ids are stable (hotkeys bind to them); no default hotkeys. */
import type { TFile } from "obsidian";
import type LenslinkPlugin from "./main";

export function registerCommands(plugin: LenslinkPlugin): void {
	const { actions } = plugin;

	/** A command on the active Markdown note, offered only when there is one. */
	const noteCommand = (id: string, name: string, run: (file: TFile) => Promise<void>) => {
		plugin.addCommand({
			id,
			name,
			checkCallback: (checking) => {
				const file = actions.activeNote();
				if (!file) return false;
				if (!checking) void run(file);
				return true;
			},
		});
	};

	plugin.addCommand({
		id: "open-related-pane",
		name: "Open related notes pane",
		callback: () => void plugin.openPane(),
	});

	noteCommand("update-block", "Update related notes block in current note",
		(file) => actions.updateNote(file));
	noteCommand("take-over-block", "Replace an edited related notes block in current note",
		(file) => actions.updateNote(file, true));
	noteCommand("remove-block", "Remove the related notes block from current note",
		(file) => actions.removeBlock(file));

	plugin.addCommand({
		id: "update-all-blocks",
		name: "Update related notes blocks in all notes",
		callback: () => void actions.updateAll(),
	});

	noteCommand("reindex-note", "Reindex current note", (file) => actions.reindex(file));

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
