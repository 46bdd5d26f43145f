// Connecting to the browser pexi-boot started: Firefox over WebDriver
// BiDi (ws://127.0.0.1:9222/session), or Chromium over CDP in tests,
// retrying until it listens.
//
// Firefox keeps one BiDi session at a time and does not end it when the
// WebSocket closes: a runner that died without ending its session (kill
// -9, a crash) leaves Firefox refusing every new one ("Maximum number of
// active sessions"). The runner then restarts Firefox itself, by
// signalling the pid in browser.pidfile (pexi-firefox writes it, and
// supervise-daemon starts Firefox again with a fresh profile).

import { readFile } from 'node:fs/promises';

import puppeteer from 'puppeteer-core';

import { log, why } from './log.js';

const RETRY_MS = 500;
const REPORT_EVERY_MS = 10000;
const RESTART_PAUSE_MS = 15000;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function connectOptions(b) {
	const o = { protocol: b.protocol, defaultViewport: null };
	if (b.protocol === 'cdp' && /^https?:/.test(b.endpoint))
		o.browserURL = b.endpoint;
	else
		o.browserWSEndpoint = b.endpoint;
	return o;
}

function staleSession(err) {
	return /maximum number of active sessions/i.test(why(err));
}

async function restartBrowser(pidfile) {
	let pid;
	try {
		pid = Number.parseInt(await readFile(pidfile, 'utf8'), 10);
	} catch (err) {
		log.error(`cannot restart the browser: ${pidfile}: ` +
		    why(err));
		return;
	}
	if (!(pid > 1)) {
		log.error(`cannot restart the browser: ${pidfile} holds ` +
		    'no pid');
		return;
	}
	log.warn(`the browser holds a stale WebDriver BiDi session (a ` +
	    `runner before this one ended without closing it): restarting ` +
	    `it (SIGTERM to pid ${pid})`);
	try {
		process.kill(pid, 'SIGTERM');
	} catch (err) {
		log.error(`cannot signal the browser (pid ${pid}): ` +
		    why(err));
	}
}

// The connected puppeteer Browser; throws once connect_timeout_ms passed.
export async function connectBrowser(b) {
	const t0 = Date.now();
	let reported = 0;
	let restarted = 0;

	for (;;) {
		try {
			return await puppeteer.connect(connectOptions(b));
		} catch (err) {
			const now = Date.now();
			if (staleSession(err) && b.pidfile !== null &&
			    now - restarted > RESTART_PAUSE_MS) {
				restarted = now;
				await restartBrowser(b.pidfile);
			} else if (staleSession(err) && b.pidfile === null &&
			    reported === 0) {
				log.error('the browser holds a stale ' +
				    'WebDriver BiDi session and ' +
				    'browser.pidfile is not set: restart ' +
				    'the browser');
			}
			if (now - t0 >= b.connect_timeout_ms)
				throw new Error(`no browser at ${b.endpoint} ` +
				    `after ${b.connect_timeout_ms} ms: ` +
				    why(err));
			if (now - reported >= REPORT_EVERY_MS) {
				reported = now;
				log.info(`waiting for the browser at ` +
				    `${b.endpoint}: ${why(err)}`);
			}
		}
		await sleep(RETRY_MS);
	}
}
