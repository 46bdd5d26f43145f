// Chromium over the Chrome DevTools Protocol (tests, and a second
// opinion on Firefox's behaviour). The Fetch domain enabled on the
// browser's own session pauses every request of every target (pages,
// popups, frames, dedicated workers) before it is sent; answers go back
// with Fetch.fulfillRequest, the command HTTPRequest.respond() sends.
// Chromium does not pause WebSocket handshakes (README.md).

import { performance } from 'node:perf_hooks';

import { log, why } from './log.js';
import { byteString, mediate } from './mediate.js';

function requestBody(r) {
	if (!r.hasPostData)
		return null;
	if (!Array.isArray(r.postDataEntries))
		throw new Error('Chromium paused the request without its body');
	return Buffer.concat(r.postDataEntries.map((e) =>
	    Buffer.from(e.bytes ?? '', 'base64')));
}

async function answer(session, id, act) {
	switch (act.action) {
	case 'continue':
		return session.send('Fetch.continueRequest', { requestId: id });
	case 'fail':
		return session.send('Fetch.failRequest', { requestId: id,
		    errorReason: 'AccessDenied' });
	default:
		// binaryResponseHeaders: byte strings kept as bytes, repeats
		// (Set-Cookie) kept.
		return session.send('Fetch.fulfillRequest', {
			requestId: id,
			responseCode: act.status,
			binaryResponseHeaders: Buffer.from(act.headers.map(
			    ([n, v]) => `${n}: ${v}`).join('\0'), 'latin1')
			    .toString('base64'),
			body: act.bodyBase64,
		});
	}
}

async function paused(session, ctx, ev) {
	const t0 = performance.now();
	const r = ev.request;
	const headers = [];
	for (const [n, v] of Object.entries(r.headers))
		for (const one of String(v).split('\n'))
			headers.push([n, byteString(one)]);
	const req = { method: r.method, url: r.url + (r.urlFragment ?? ''),
	    headers };
	const act = await mediate(ctx, req, async () => requestBody(r));
	const t1 = performance.now();
	ctx.stats.busyMs += t1 - t0;
	try {
		await answer(session, ev.requestId, act);
	} catch (err) {
		log.debug(`${r.method} ${r.url}: the browser no longer ` +
		    `waits: ${why(err)}`);
	}
	ctx.stats.ackMs += performance.now() - t1;
}

// Intercept every request of the browser; ctx: { pool, stats }.
export async function interceptCdp(browser, ctx) {
	const session = await browser.target().createCDPSession();
	session.on('Fetch.requestPaused', (ev) => {
		paused(session, ctx, ev).catch((err) => log.error(
		    `${ev.request.url}: ${why(err)}`));
	});
	await session.send('Fetch.enable', { patterns: [{ urlPattern: '*',
	    requestStage: 'Request' }] });
	return session;
}
