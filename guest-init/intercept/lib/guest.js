// What the runner tells the machine it runs in: a line per milestone on
// the console (config "console", e.g. /dev/console: on a pep guest that
// is hvc0, which pep-run writes to the host), each with the guest's
// uptime; and, with "poweroff_after", the machine's own clean poweroff
// once the visits are done and their results are on disk.

import { spawn } from 'node:child_process';
import { appendFile, readFile } from 'node:fs/promises';

import { log, why } from './log.js';

// Seconds since boot ("12.34"), or null off Linux.
async function uptime() {
	try {
		return (await readFile('/proc/uptime', 'utf8')).split(' ')[0];
	} catch {
		return null;
	}
}

// "pexi-intercept: [12.34] MSG" lines to a file, or nowhere (null).
export class GuestConsole {
	#path;

	constructor(path) {
		this.#path = path;
	}

	async note(msg) {
		if (this.#path === null)
			return;
		const up = await uptime();
		try {
			await appendFile(this.#path, 'pexi-intercept: ' +
			    `${up === null ? '' : `[${up}] `}${msg}\n`);
		} catch (err) {
			log.warn(`${this.#path}: ${why(err)}`);
		}
	}
}

// Run the machine's poweroff (OpenRC, or sysvinit, stops the services,
// this runner among them, unmounts and powers off: pep-run then exits
// 0). Resolves with true once it started.
export function powerOff(cmd = 'poweroff') {
	return new Promise((resolve) => {
		let child;
		try {
			child = spawn(cmd, [], { stdio: 'ignore',
			    detached: true });
		} catch (err) {
			log.error(`${cmd}: ${why(err)}`);
			resolve(false);
			return;
		}
		child.once('error', (err) => {
			log.error(`cannot power off: ${cmd}: ${why(err)}`);
			resolve(false);
		});
		child.once('spawn', () => {
			child.unref();
			resolve(true);
		});
	});
}
