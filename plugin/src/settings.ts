/** The plugin's options and their tab. */
import { App, Plugin, PluginSettingTab, Setting } from "obsidian";
import { LenslinkClient, apiBase, errorMessage } from "./api";

export interface LenslinkSettings {
	/** Where `lenslink serve` listens (loopback only). */
	daemonUrl: string;
	/** The API token printed by `lenslink token`. */
	token: string;
	/** The pane's lens when Obsidian starts; "" shows every lens. */
	defaultLens: string;
	/** Whether the pane follows the active note (otherwise it refreshes on demand). */
	refreshOnSwitch: boolean;
	/** Whether the pane shows calibrated scores next to each note. */
	showScores: boolean;
}

export const DEFAULT_SETTINGS: LenslinkSettings = {
	daemonUrl: "http://127.0.0.1:8765",
	token: "",
	defaultLens: "",
	refreshOnSwitch: true,
	showScores: true,
};

/** What the tab needs from the plugin (kept narrow so the tab holds no plugin logic). */
export interface SettingsHost extends Plugin {
	settings: LenslinkSettings;
	client: LenslinkClient;
	saveSettings(): Promise<void>;
	checkConnection(): Promise<void>;
}

export class LenslinkSettingTab extends PluginSettingTab {
	constructor(app: App, private readonly host: SettingsHost) {
		super(app, host);
	}

	display(): void {
		const { containerEl } = this;
		containerEl.empty();
		const settings = this.host.settings;

		const urlHelp = "Where the lenslink daemon listens on this computer (the plugin talks to nothing else).";
		const urlSetting = new Setting(containerEl)
			.setName("Daemon address")
			.setDesc(urlProblem(settings.daemonUrl) ?? urlHelp)
			.addText((text) => text
				.setPlaceholder(DEFAULT_SETTINGS.daemonUrl)
				.setValue(settings.daemonUrl)
				.onChange(async (value) => {
					settings.daemonUrl = value.trim() || DEFAULT_SETTINGS.daemonUrl;
					const problem = urlProblem(settings.daemonUrl);
					urlSetting.setDesc(problem ?? urlHelp);
					urlSetting.descEl.toggleClass("lenslink-invalid", problem !== null);
					await this.host.saveSettings();
				}));

		new Setting(containerEl)
			.setName("Token")
			.setDesc("Run `lenslink token` in a terminal and paste what it prints.")
			.addText((text) => {
				text.inputEl.type = "password";
				text.setPlaceholder("Paste the token")
					.setValue(settings.token)
					.onChange(async (value) => {
						settings.token = value.trim();
						await this.host.saveSettings();
					});
			});

		const lensSetting = new Setting(containerEl)
			.setName("Default lens")
			.setDesc("The lens the related notes pane starts with.");
		lensSetting.addDropdown((dropdown) => {
			dropdown.addOption("", "All lenses");
			if (settings.defaultLens) dropdown.addOption(settings.defaultLens, settings.defaultLens);
			dropdown.setValue(settings.defaultLens).onChange(async (value) => {
				settings.defaultLens = value;
				await this.host.saveSettings();
			});
			// The daemon knows the vault's lenses; without it the saved choice stays selectable.
			this.host.client.lenses().then((lenses) => {
				for (const lens of lenses) {
					if (lens.name !== settings.defaultLens) dropdown.addOption(lens.name, lens.name);
				}
				dropdown.setValue(settings.defaultLens);
			}).catch(() => {
				lensSetting.setDesc("The lens the related notes pane starts with (start the daemon to list its lenses).");
			});
		});

		new Setting(containerEl)
			.setName("Follow the active note")
			.setDesc("Refresh the related notes pane when you switch notes; otherwise use its refresh button.")
			.addToggle((toggle) => toggle
				.setValue(settings.refreshOnSwitch)
				.onChange(async (value) => {
					settings.refreshOnSwitch = value;
					await this.host.saveSettings();
				}));

		new Setting(containerEl)
			.setName("Show scores")
			.setDesc("Show how likely each related note is to be linked (e.g. \"72% likely\" or \"top 5%\").")
			.addToggle((toggle) => toggle
				.setValue(settings.showScores)
				.onChange(async (value) => {
					settings.showScores = value;
					await this.host.saveSettings();
				}));

		new Setting(containerEl)
			.setName("Check the connection")
			.setDesc("Ask the daemon for its status with this address and token.")
			.addButton((button) => button
				.setButtonText("Check")
				.onClick(() => {
					void this.host.checkConnection();
				}));
	}
}

/** Why the plugin would refuse this daemon address, or null when it is fine. */
function urlProblem(url: string): string | null {
	try {
		apiBase(url);
		return null;
	} catch (error) {
		return errorMessage(error);
	}
}
