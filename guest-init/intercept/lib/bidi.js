// Firefox over WebDriver BiDi. One intercept for the whole browser (no
// "contexts"), added on puppeteer's own session: every request of every
// top-level context, its frames and workers is blocked from its first
// one, so a popup's first request is caught too. (Page.setRequestInterception
// adds one per page after the page exists, which lets a popup's first
// navigation through, and puppeteer's fetchPostData() cannot return a
// binary body under BiDi; both measured on firefox-esr 153.)
//
// Bodies come from network.getData (the data collector puppeteer adds
// when it connects); answers go back with network.provideResponse, the
// command HTTPRequest.respond() sends.

import { performance } from 'node:perf_hooks';

import { log, why } from './log.js';
import { byteString, mediate, reasonPhrase } from './mediate.js';

function bytesToString(v) {
	return v.type === 'base64' ?
	    Buffer.from(v.value, 'base64').toString('latin1') :
	    byteString(v.value);
}

// A header value for BiDi: a string when it is ASCII, else its bytes.
function bytesValue(s) {
	// eslint-disable-next-line no-control-regex
	return /^[\u0000-\u007f]*$/.test(s) ? { type: 'string', value: s } :
	    { type: 'base64', value: Buffer.from(s, 'latin1')
		.toString('base64') };
}

async function requestBody(conn, r) {
	if (r.bodySize === 0)
		return null;
	if ((r.bodySize === undefined || r.bodySize === null) &&
	    (r.method === 'GET' || r.method === 'HEAD'))
		return null;
	const { result } = await conn.send('network.getData', {
		dataType: 'request', request: r.request });
	const b = result.bytes;
	// A body that is valid UTF-8 comes as its text, any other as base64.
	return b.type === 'base64' ? Buffer.from(b.value, 'base64') :
	    Buffer.from(b.value, 'utf8');
}

async function answer(conn, id, act) {
	switch (act.action) {
	case 'continue':
		return conn.send('network.continueRequest', { request: id });
	case 'fail':
		return conn.send('network.failRequest', { request: id });
	default:
		return conn.send('network.provideResponse', {
			request: id,
			statusCode: act.status,
			reasonPhrase: reasonPhrase(act.status),
			headers: act.headers.map(([name, value]) =>
			    ({ name, value: bytesValue(value) })),
			body: { type: 'base64', value: act.bodyBase64 },
		});
	}
}

async function blocked(conn, ctx, ev) {
	const t0 = performance.now();
	const r = ev.request;
	const req = { method: r.method, url: r.url,
	    headers: r.headers.map((h) => [h.name, bytesToString(h.value)]) };
	if (typeof ev.timestamp === 'number')
		ctx.stats.eventMs += Math.max(0, Date.now() - ev.timestamp);
	const act = await mediate(ctx, req, () => requestBody(conn, r));
	const t1 = performance.now();
	ctx.stats.busyMs += t1 - t0;
	try {
		await answer(conn, r.request, act);
	} catch (err) {
		// The page navigated away or closed while pepd fetched.
		log.debug(`${r.method} ${r.url}: the browser no longer ` +
		    `waits: ${why(err)}`);
	}
	ctx.stats.ackMs += performance.now() - t1;
}

// Intercept every request of the browser; ctx: { pool, stats }.
export async function interceptBidi(browser, ctx) {
	const conn = browser.connection;
	if (!conn || typeof conn.send !== 'function' ||
	    typeof conn.on !== 'function')
		throw new Error('puppeteer-core gives no WebDriver BiDi ' +
		    'connection (browser.connection); this runner was ' +
		    'written for the puppeteer-core in its package-lock.json');
	const { result } = await conn.send('network.addIntercept', {
		phases: ['beforeRequestSent'] });
	const intercept = result.intercept;
	conn.on('network.beforeRequestSent', (ev) => {
		if (!ev.isBlocked || !ev.intercepts?.includes(intercept))
			return;
		blocked(conn, ctx, ev).catch((err) => log.error(
		    `${ev.request.url}: ${why(err)}`));
	});
	return intercept;
}
