/** Small modals: a yes/no confirmation and the lens suggester. */
import { App, FuzzySuggestModal, Modal, Setting } from "obsidian";
import { Lens } from "./api";

/** Asks once; `onConfirm` runs only when the user presses the action button. */
export class ConfirmModal extends Modal {
	constructor(app: App, private readonly title: string, private readonly message: string,
		private readonly action: string, private readonly onConfirm: () => void) {
		super(app);
	}

	onOpen(): void {
		this.setTitle(this.title);
		this.contentEl.createEl("p", { text: this.message });
		new Setting(this.contentEl)
			.addButton((button) => button.setButtonText("Cancel").onClick(() => this.close()))
			.addButton((button) => button.setButtonText(this.action).setCta().onClick(() => {
				this.close();
				this.onConfirm();
			}));
	}

	onClose(): void {
		this.contentEl.empty();
	}
}

/** A lens to show in the pane; `name` null means every lens. */
export interface LensChoice {
	name: string | null;
	description: string;
}

export class LensSuggestModal extends FuzzySuggestModal<LensChoice> {
	constructor(app: App, private readonly choices: LensChoice[],
		private readonly onChoose: (choice: LensChoice) => void) {
		super(app);
		this.setPlaceholder("Show related notes through which lens?");
	}

	getItems(): LensChoice[] {
		return this.choices;
	}

	getItemText(choice: LensChoice): string {
		const name = choice.name ?? "All lenses";
		return choice.description ? `${name}: ${choice.description}` : name;
	}

	onChooseItem(choice: LensChoice): void {
		this.onChoose(choice);
	}
}

/** The suggester's choices: every lens first, then the daemon's lenses in config order. */
export function lensChoices(lenses: Lens[]): LensChoice[] {
	return [{ name: null, description: "every lens, grouped" },
		...lenses.map((lens) => ({ name: lens.name, description: lens.description }))];
}
