/**
 * What the related-notes pane shows, as a small state machine with no DOM and no Obsidian
 * imports: the view renders `PaneModel.state`, tests drive the model directly.
 *
 * Every load takes a ticket; an answer whose ticket is no longer current (the user opened
 * another note, switched lens or refreshed meanwhile) is dropped.
 */
import { RelatedNote, RelatedResponse, errorMessage, isDaemonError } from "./api";

export interface LensGroup {
	lens: string;
	items: RelatedNote[];
	/** Why the lens has none for this note, when the daemon says (absent otherwise). */
	whyNone?: string;
}

/** Why there is nothing to show: nothing related, a note outside the index, no index yet. */
export type EmptyReason = "no-results" | "not-indexed" | "not-ready";

export type PaneState =
	| { kind: "no-note" }
	| { kind: "loading"; path: string; lens: string | null }
	| { kind: "down"; path: string | null; message: string }
	| { kind: "error"; path: string | null; message: string }
	| { kind: "empty"; path: string; lens: string | null; reason: EmptyReason; why?: string }
	| { kind: "results"; path: string; lens: string | null; groups: LensGroup[] };

/** Fetches a note's related notes, grouped by lens (`lens` null: every lens). */
export type RelatedSource = (path: string, lens: string | null) => Promise<LensGroup[]>;

export type LoadMode = "follow" | "reload" | "background";

export class PaneModel {
	state: PaneState = { kind: "no-note" };
	private ticket = 0;

	constructor(private readonly source: RelatedSource,
		private readonly onChange: (state: PaneState) => void = () => undefined) {}

	/** The note the pane is about (null when none). */
	get path(): string | null {
		return "path" in this.state ? this.state.path : null;
	}

	/**
	 * Show `path` (null: no Markdown note open) under `lens`.
	 * - "follow": a note switch; does nothing when that note and lens are already shown or
	 *   loading (Obsidian fires several events per switch);
	 * - "reload": ask again, showing "loading" meanwhile (refresh button, lens switch);
	 * - "background": ask again but keep what is shown until the answer arrives (the index
	 *   changed), unless the pane was showing another note or the daemon being down.
	 */
	async show(path: string | null, lens: string | null, mode: LoadMode = "follow"): Promise<void> {
		if (mode === "follow" && this.isShowing(path, lens)) return;
		const ticket = ++this.ticket;
		if (path === null) {
			this.set({ kind: "no-note" });
			return;
		}
		if (mode !== "background" || !this.isShowing(path, lens)) this.set({ kind: "loading", path, lens });
		let next: PaneState;
		try {
			const all = await this.source(path, lens);
			const groups = all.filter((g) => g.items.length > 0);
			const why = groups.length ? undefined : whyNone(all);
			next = groups.length ? { kind: "results", path, lens, groups }
				: { kind: "empty", path, lens, reason: "no-results", ...(why ? { why } : {}) };
		} catch (error) {
			next = failureState(path, lens, error);
		}
		if (ticket === this.ticket) this.set(next);
	}

	/** Drop whatever is in flight (the view closed). */
	cancel(): void {
		this.ticket++;
	}

	private isShowing(path: string | null, lens: string | null): boolean {
		const state = this.state;
		if (path === null) return state.kind === "no-note";
		return (state.kind === "loading" || state.kind === "results" || state.kind === "empty") &&
			state.path === path && state.lens === lens;
	}

	private set(state: PaneState): void {
		this.state = state;
		this.onChange(state);
	}
}

/**
 * Why no lens has anything for the note, from the daemon's reasons: one reason when every
 * lens gives the same, else "lens: reason" for each lens that gives one.
 */
export function whyNone(groups: LensGroup[]): string | undefined {
	const given = groups.filter((g) => g.whyNone);
	if (!given.length) return undefined;
	const texts = new Set(given.map((g) => g.whyNone));
	if (given.length === groups.length && texts.size === 1) return given[0].whyNone;
	return given.map((g) => `${g.lens}: ${g.whyNone}`).join("; ");
}

function failureState(path: string, lens: string | null, error: unknown): PaneState {
	if (isDaemonError(error, "down")) return { kind: "down", path, message: error.message };
	if (isDaemonError(error, "not-found") && error.code === "NotFound") {
		return { kind: "empty", path, lens, reason: "not-indexed" };
	}
	if (isDaemonError(error, "not-ready")) return { kind: "empty", path, lens, reason: "not-ready" };
	return { kind: "error", path, message: errorMessage(error) };
}

/** Groups for every lens (or one), fetched in parallel from a per-lens fetcher. */
export function groupedSource(lenses: () => Promise<string[]>,
	relatedFor: (path: string, lens: string) => Promise<Pick<RelatedResponse, "related" | "why_none">>): RelatedSource {
	return async (path, lens) => {
		const names = lens ? [lens] : await lenses();
		const answers = await Promise.all(names.map((name) => relatedFor(path, name)));
		return names.map((name, i) => {
			const why = answers[i].why_none;
			return { lens: name, items: answers[i].related, ...(why ? { whyNone: why } : {}) };
		});
	};
}

/**
 * A calibrated score as a likelihood a person can read, never a bare cosine:
 * "probability" -> "72% likely"; "percentile" -> "top 5%" (of all note pairs).
 */
export function formatScore(score: number, kind: string): string {
	if (!Number.isFinite(score)) return "";
	if (kind === "probability") {
		const percent = Math.round(score * 100);
		if (percent < 1) return "<1% likely";
		if (percent > 99) return ">99% likely";
		return `${percent}% likely`;
	}
	if (kind === "percentile") {
		const top = Math.min(100, Math.max(1, Math.ceil((1 - score) * 100 - 1e-9)));
		return `top ${top}%`;
	}
	return "";
}

/** What the score badge's tooltip says about how the number was obtained. */
export function scoreExplanation(kind: string): string {
	if (kind === "probability") {
		return "How likely you would link these notes, calibrated on this vault's own links";
	}
	if (kind === "percentile") {
		return "Where this pair ranks among all note pairs (too few links in the vault to calibrate a probability)";
	}
	return "";
}

/** The command that starts the daemon for a vault, quoted for a POSIX shell. */
export function startCommand(vaultPath: string | null): string {
	if (!vaultPath) return "lenslink serve <vault path>";
	const quoted = /^[\w@%+=:,./-]+$/.test(vaultPath) ? vaultPath : `'${vaultPath.replace(/'/g, "'\\''")}'`;
	return `lenslink serve ${quoted}`;
}
