// The visits of config.json, one after the other in one tab, each
// reported as a JSON line in `results`, and a screenshot of the last page
// in `screenshot` (README.md, "Results").

import { appendFile, mkdir, rename } from 'node:fs/promises';
import { dirname } from 'node:path';

import { log, why } from './log.js';

const TEXT_MAX = 8192;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Appends JSON lines to a file (or nowhere when path is null).
export class Results {
	#path;

	constructor(path) {
		this.#path = path;
	}

	async open() {
		if (this.#path !== null)
			await mkdir(dirname(this.#path), { recursive: true });
	}

	async write(rec) {
		if (this.#path === null)
			return;
		try {
			await appendFile(this.#path,
			    JSON.stringify(rec) + '\n');
		} catch (err) {
			log.error(`${this.#path}: ${why(err)}`);
		}
	}
}

async function pageState(page) {
	const s = { final_url: page.url(), title: null, text: null };
	try {
		s.title = await page.title();
		s.text = await page.evaluate((max) =>
		    (document.body?.innerText ?? '').slice(0, max), TEXT_MAX);
	} catch (err) {
		log.warn(`${s.final_url}: cannot read the page: ${why(err)}`);
	}
	return s;
}

async function visitOne(page, v, i, stats) {
	const t0 = Date.now();
	const before = stats.snapshot();
	const rec = { event: 'visit', visit: i, url: v.url,
	    time: new Date().toISOString(), ok: false, status: null };
	try {
		const resp = await page.goto(v.url, { waitUntil: v.wait_until,
		    timeout: v.timeout_ms });
		rec.status = resp?.status() ?? null;
		if (v.wait_for !== null)
			await page.waitForSelector(v.wait_for,
			    { timeout: v.timeout_ms });
		if (v.settle_ms > 0)
			await sleep(v.settle_ms);
		rec.ok = true;
	} catch (err) {
		rec.error = why(err);
		log.warn(`visit ${i} ${v.url}: ${rec.error}`);
	}
	Object.assign(rec, await pageState(page));
	rec.ms = Date.now() - t0;
	rec.requests = stats.since(before);
	return rec;
}

async function screenshot(page, path) {
	const tmp = `${path}.tmp`;
	try {
		await mkdir(dirname(path), { recursive: true });
		await page.bringToFront();
		await page.screenshot({ path: tmp, type: 'png' });
		await rename(tmp, path);
		return true;
	} catch (err) {
		log.error(`screenshot ${path}: ${why(err)}`);
		return false;
	}
}

// Visit everything in cfg.visits; resolves with the number that loaded.
// guest (lib/guest.js) gets a line per visit.
export async function runVisits(browser, cfg, stats, results, guest) {
	const pages = await browser.pages();
	const page = pages[0] ?? await browser.newPage();
	let ok = 0;

	for (const [i, v] of cfg.visits.entries()) {
		const rec = await visitOne(page, v, i, stats);
		if (rec.ok)
			ok++;
		log.info(`visit ${i} ${v.url}: ` +
		    `${rec.ok ? 'loaded' : 'failed'} (status ${rec.status}, ` +
		    `${rec.ms} ms, ${rec.requests.mediated} mediated)`);
		await results.write(rec);
		await guest?.note(`visit ${i} ${v.url}: ` +
		    `${rec.ok ? 'loaded' : 'failed'}, status ${rec.status}, ` +
		    `${rec.ms} ms, ${rec.requests.mediated} requests`);
	}
	// A popup may have taken the front: a page behind it gives no
	// frames to capture (Chromium waits for one).
	const shot = cfg.screenshot !== null && cfg.visits.length > 0 &&
	    await screenshot(page, cfg.screenshot);
	await results.write({ event: 'done', time: new Date().toISOString(),
	    visits: cfg.visits.length, ok,
	    screenshot: shot ? cfg.screenshot : null });
	return ok;
}

// Before the session ends (--once): every page goes to about:blank while
// requests are still intercepted. A page left open keeps loading what it
// asks for later (a favicon, a service worker's fetch), and once the
// runner is gone the browser would send those by itself.
export async function quiesce(browser) {
	let pages;
	try {
		pages = await browser.pages();
	} catch (err) {
		log.warn(`listing the pages to blank: ${why(err)}`);
		return;
	}
	await Promise.all(pages.map(async (p) => {
		try {
			await p.goto('about:blank', { timeout: 5000 });
		} catch (err) {
			log.warn(`blanking ${p.url()}: ${why(err)}`);
		}
	}));
}
