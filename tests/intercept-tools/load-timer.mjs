// bench-intercept's driver: in one Firefox (WebDriver BiDi, already
// running), load a page ROUNDS times each way, interleaved: directly from
// the origin, and with every request intercepted by the runner's own code
// (lib/bidi.js, lib/mediate.js, lib/pepd.js) and fetched by pepd through
// pexi-bridge. The HTTP cache is bypassed and each round's URL is new.
// One JSON line per load on stdout.
//
//   node load-timer.mjs RUNNER_DIR URL_PREFIX ROUNDS [CONNECTIONS]
//   (URL_PREFIX + ROUND + ".html" is the page)

import { pathToFileURL } from 'node:url';
import { performance } from 'node:perf_hooks';

const [dir, prefix, roundsArg, connsArg] = process.argv.slice(2);
const lib = (m) => import(pathToFileURL(`${dir}/${m}`).href);
const { default: puppeteer } = await import(pathToFileURL(
    `${dir}/node_modules/puppeteer-core/lib/esm/puppeteer/puppeteer-core.js`)
    .href);
const { interceptBidi } = await lib('lib/bidi.js');
const { Stats } = await lib('lib/mediate.js');
const { PepdPool } = await lib('lib/pepd.js');

const rounds = Number(roundsArg);
const browser = await puppeteer.connect({ protocol: 'webDriverBiDi',
    browserWSEndpoint: 'ws://127.0.0.1:9222/session', defaultViewport: null });
const conn = browser.connection;
await conn.send('network.setCacheBehavior', { cacheBehavior: 'bypass' });
const page = (await browser.pages())[0];
const pool = new PepdPool({ host: '127.0.0.1', port: 4040,
    connections: Number(connsArg ?? 8), timeout_ms: 60000 });
const stats = new Stats();
const ctx = { pool, stats, preflight: true };

async function load(mode, round) {
	let intercept = null;
	if (mode === 'mediated')
		intercept = await interceptBidi(browser, ctx);
	const before = stats.snapshot();
	const t0 = performance.now();
	await page.goto(`${prefix}${mode}-${round}.html`,
	    { waitUntil: 'load' });
	const wall = performance.now() - t0;
	const r = await page.evaluate(() => {
		const n = performance.getEntriesByType('navigation')[0];
		const imgs = [...document.images];
		return { load: n.loadEventEnd - n.startTime,
		    images: imgs.filter((i) => i.naturalWidth > 0).length };
	});
	if (intercept !== null)
		await conn.send('network.removeIntercept', { intercept });
	const d = stats.since(before);
	return { mode, round, wall_ms: Math.round(wall * 10) / 10,
	    load_ms: Math.round(r.load * 10) / 10, images: r.images,
	    mediated: d.mediated, event_ms: d.event_ms, runner_ms: d.runner_ms,
	    pepd_ms: d.pepd_ms, ack_ms: d.ack_ms };
}

// Two loads each way first, not counted (Firefox's first loads are slow).
for (let i = 0; i < 2; i++) {
	await load('direct', `w${i}`);
	await load('mediated', `w${i}`);
}
for (let i = 0; i < rounds; i++) {
	const order = i % 2 === 0 ? ['direct', 'mediated'] :
	    ['mediated', 'direct'];
	for (const m of order)
		process.stdout.write(JSON.stringify(await load(m, i)) + '\n');
}
await browser.disconnect();
pool.close();
