#!/usr/bin/env node
// pexi-intercept: the pep guest's intercept runner (README.md). It
// connects to the headless browser pexi-boot started, has every request
// the browser makes decided and fetched by pepd on the host (through
// pexi-bridge), visits what /etc/pexi/config.json lists, reports each
// page load as a JSON line and keeps intercepting until it is stopped.
//
// Exit status: 0 done (stopped, or --once after the visits), 1 a runtime
// failure (no browser, the browser went away), 2 a usage or
// configuration error.

import { parseArgs } from 'node:util';

import { connectBrowser } from './lib/browser.js';
import { interceptBidi } from './lib/bidi.js';
import { interceptCdp } from './lib/cdp.js';
import { ConfigError, DEFAULT_PATH, loadConfig } from './lib/config.js';
import { GuestConsole, powerOff } from './lib/guest.js';
import { log, why } from './lib/log.js';
import { Stats } from './lib/mediate.js';
import { PepdPool } from './lib/pepd.js';
import { Results, quiesce, runVisits } from './lib/visit.js';

const VERSION = '0.1.0';
const USAGE = `usage: pexi-intercept [options]
  -c, --config FILE    configuration (default ${DEFAULT_PATH})
      --once           exit after the visits (default: keep intercepting)
      --check-config   check the configuration, print "configuration OK"
  -h, --help           this help
      --version        print the version
`;
const DISCONNECT_MS = 3000;

let browser = null;
let pool = null;
let stopping = false;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// End the BiDi session (Firefox allows one, and keeps a session whose
// runner vanished), close pepd's connections, exit.
async function shutdown(code) {
	if (stopping)
		return;
	stopping = true;
	if (browser !== null) {
		try {
			await Promise.race([browser.disconnect(),
			    sleep(DISCONNECT_MS)]);
		} catch (err) {
			log.warn(`ending the browser session: ${why(err)}`);
		}
	}
	pool?.close();
	process.exit(code);
}

function args() {
	try {
		return parseArgs({ options: {
			config: { type: 'string', short: 'c' },
			once: { type: 'boolean' },
			'check-config': { type: 'boolean' },
			help: { type: 'boolean', short: 'h' },
			version: { type: 'boolean' },
		} }).values;
	} catch (err) {
		process.stderr.write(`pexi-intercept: ${why(err)}\n` +
		    'Try \'pexi-intercept --help\'\n');
		process.exit(2);
	}
}

async function start(cfg, once) {
	const stats = new Stats();
	const results = new Results(cfg.results);
	const guest = new GuestConsole(cfg.console);
	await results.open();
	await guest.note('started: waiting for the browser');
	pool = new PepdPool(cfg.bridge);
	log.info(`connecting to the browser at ${cfg.browser.endpoint} ` +
	    `(${cfg.browser.protocol})`);
	browser = await connectBrowser(cfg.browser);
	browser.on('disconnected', () => {
		if (stopping)
			return;
		log.error('the browser connection is gone (the browser ' +
		    'exited?)');
		pool.close();
		process.exit(1);
	});
	// Firefox leaves CORS preflights to the runner (lib/cors.js).
	const ctx = { pool, stats, preflight: cfg.browser.protocol !==
	    'cdp' };
	if (cfg.browser.protocol === 'cdp')
		await interceptCdp(browser, ctx);
	else
		await interceptBidi(browser, ctx);
	const version = await browser.version();
	log.info(`intercepting every request of ${version}; pepd through ` +
	    `pexi-bridge at ${cfg.bridge.host}:${cfg.bridge.port}`);
	await guest.note(`browser connected: ${version}`);
	await results.write({ event: 'start', time: new Date().toISOString(),
	    pid: process.pid, browser: version,
	    protocol: cfg.browser.protocol });
	const ok = await runVisits(browser, cfg, stats, results, guest);
	log.info(`visits done: ${ok} of ${cfg.visits.length} loaded; ` +
	    `${stats.mediated} requests mediated, ${pool.opened} pepd ` +
	    'connections opened');
	await guest.note(`visits done: ${ok} of ${cfg.visits.length} loaded`);
	// Every page to about:blank first, so nothing a page asks for later
	// is sent unintercepted while the session ends.
	if (once || cfg.poweroff_after)
		await quiesce(browser);
	// The results are written: the shutdown that poweroff starts stops
	// this runner (SIGTERM), which ends its session on the way out.
	if (cfg.poweroff_after) {
		log.info('powering off (poweroff_after)');
		await guest.note('powering off');
		if (!await powerOff())
			await guest.note('cannot power off (see runner.log)');
	}
	if (once)
		await shutdown(0);
	else
		log.info('intercepting until stopped');
}

async function main() {
	const a = args();
	if (a.help) {
		process.stdout.write(USAGE);
		return;
	}
	if (a.version) {
		process.stdout.write(`pexi-intercept ${VERSION}\n`);
		return;
	}
	const file = a.config ?? DEFAULT_PATH;
	let cfg;
	try {
		cfg = await loadConfig(file);
	} catch (err) {
		if (!(err instanceof ConfigError))
			throw err;
		log.error(err.message);
		process.exit(2);
	}
	if (a['check-config']) {
		process.stdout.write('configuration OK\n');
		return;
	}
	process.on('SIGTERM', () => void shutdown(0));
	process.on('SIGINT', () => void shutdown(0));
	await start(cfg, Boolean(a.once));
}

function fatal(err) {
	log.error(`${err instanceof Error && err.stack ? err.stack : err}`);
	void shutdown(1);
}

process.on('unhandledRejection', fatal);
process.on('uncaughtException', fatal);
main().catch(fatal);
