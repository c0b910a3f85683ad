/**
 * The status bar item: connected / indexing (with progress) / error.
 *
 * Event-driven: the plugin calls `refresh()` on note switches, (debounced) file changes
 * and after every command. The only timer is a follow-up while the daemon reports work in
 * progress (phase "starting"/"indexing" or a queued change), so the progress stays live
 * during an index and stops by itself once the daemon is idle, down or refusing us.
 */
import { DaemonStatus, errorMessage, isDaemonError } from "./api";

/** The last answer to GET /v1/status: the status, or why there is none. */
export type Observed = { ok: true; status: DaemonStatus } | { ok: false; error: unknown };

export interface StatusLabel {
	text: string;
	tooltip: string;
	state: "ready" | "busy" | "down" | "error";
}

const FOLLOW_UP_MS = 2000;

/** What the status bar says for an observation (pure, for tests). */
export function statusLabel(observed: Observed): StatusLabel {
	if (!observed.ok) {
		const message = errorMessage(observed.error);
		if (isDaemonError(observed.error, "down")) {
			return { text: "lenslink: not running", tooltip: `${message}. Start it with lenslink serve.`, state: "down" };
		}
		if (isDaemonError(observed.error, "unauthorized")) {
			return { text: "lenslink: wrong token", tooltip: message, state: "error" };
		}
		return { text: "lenslink: error", tooltip: message, state: "error" };
	}
	const status = observed.status;
	if (status.phase === "indexing" || status.phase === "starting") {
		const p = status.progress;
		const detail = p && p.total > 0 ? ` ${p.stage} ${p.done}/${p.total}` : "";
		return { text: `lenslink: indexing${detail}`, tooltip: `Indexing ${status.vault}`, state: "busy" };
	}
	if (status.phase === "error") {
		return { text: "lenslink: error", tooltip: status.last_error ?? "indexing failed; retrying", state: "error" };
	}
	if (status.config_error) {
		return { text: "lenslink: config error", tooltip: status.config_error, state: "error" };
	}
	const queued = status.queue > 0 ? `, ${status.queue} queued` : "";
	return {
		text: "lenslink: connected",
		tooltip: `${status.notes} notes indexed in ${status.vault}${queued}`,
		state: status.queue > 0 ? "busy" : "ready",
	};
}

/** Whether the daemon is working, so one more look in a moment is worthwhile. */
export function isBusy(observed: Observed): boolean {
	return observed.ok && (observed.status.phase === "starting" ||
		observed.status.phase === "indexing" || observed.status.queue > 0);
}

/**
 * Whether related notes shown before may now be different: the daemon came up, finished
 * a batch (a new `last_sync`) or settled after indexing.
 */
export function indexChanged(previous: Observed | null, next: Observed): boolean {
	if (!next.ok) return false;
	if (previous === null) return false;
	if (!previous.ok) return true;
	return previous.status.last_sync !== next.status.last_sync ||
		(previous.status.phase !== "ready" && next.status.phase === "ready");
}

export interface StatusFetcher {
	status(): Promise<DaemonStatus>;
}

export class StatusBar {
	last: Observed | null = null;
	private timer: number | null = null;
	private running: Promise<void> | null = null;
	private again = false;
	private stopped = false;

	constructor(private readonly el: HTMLElement, private readonly client: StatusFetcher,
		private readonly onIndexChanged: () => void) {
		el.addClass("lenslink-status");
	}

	/** The latest status if the daemon answered, else null. */
	get status(): DaemonStatus | null {
		return this.last?.ok ? this.last.status : null;
	}

	/** Ask the daemon now; calls made while a request is in flight coalesce into one more. */
	refresh(): Promise<void> {
		if (this.running) {
			this.again = true;
			return this.running;
		}
		this.running = this.fetch().finally(() => {
			this.running = null;
			if (this.again) {
				this.again = false;
				void this.refresh();
			}
		});
		return this.running;
	}

	/** Stop the follow-up timer for good (plugin unload). */
	dispose(): void {
		this.stopped = true;
		this.clearTimer();
	}

	private clearTimer(): void {
		if (this.timer !== null) window.clearTimeout(this.timer);
		this.timer = null;
	}

	private async fetch(): Promise<void> {
		let observed: Observed;
		try {
			observed = { ok: true, status: await this.client.status() };
		} catch (error) {
			observed = { ok: false, error };
		}
		if (this.stopped) return;
		const changed = indexChanged(this.last, observed);
		this.last = observed;
		this.render(observed);
		this.clearTimer();
		if (isBusy(observed)) this.timer = window.setTimeout(() => void this.refresh(), FOLLOW_UP_MS);
		if (changed) this.onIndexChanged();
	}

	private render(observed: Observed): void {
		const label = statusLabel(observed);
		this.el.setText(label.text);
		this.el.setAttr("aria-label", label.tooltip);
		this.el.setAttr("data-tooltip-position", "top");
		this.el.setAttr("data-lenslink-state", label.state);
	}
}
