// Obsidian's own lint rules (eslint-plugin-obsidianmd's recommended set, which includes
// typescript-eslint's type-checked rules) over the plugin and its tests.
import { defineConfig } from "eslint/config";
import obsidianmd from "eslint-plugin-obsidianmd";

export default defineConfig([
	{ ignores: ["main.js", "node_modules/", ".test-build/"] },
	...obsidianmd.configs.recommended,
	{
		languageOptions: {
			parserOptions: {
				projectService: { allowDefaultProject: ["eslint.config.mjs", "esbuild.config.mjs", "test/run.mjs"] },
				tsconfigRootDir: import.meta.dirname,
			},
		},
		rules: {
			// The declarative settings API needs Obsidian 1.13 (minAppVersion is lower, and
			// this plugin's pinned `obsidian` types, 1.8.7, are what eslint-plugin-obsidianmd
			// requires); display() is the supported way below 1.13.
			"obsidianmd/settings-tab/prefer-setting-definitions": "off",
		},
	},
	{
		// Tests run in Node, not in Obsidian: fetch and bare timers are right there, and
		// node:test's describe()/it() return promises the runner itself awaits.
		files: ["test/**/*.ts"],
		rules: {
			"@typescript-eslint/no-floating-promises": ["error", {
				allowForKnownSafeCalls: [{ from: "package", package: "node:test", name: ["describe", "it"] }],
			}],
			"obsidianmd/prefer-window-timers": "off",
			"no-restricted-globals": "off",
		},
	},
]);
