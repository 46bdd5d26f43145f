// What the runner does with one intercepted request, whatever the browser:
// http(s) goes to pepd and pepd's answer (or refusal) goes back to the
// browser; what never leaves the browser (data:, blob:, about:) continues;
// a WebSocket handshake and every other scheme are refused here, since
// pepd mediates HTTP exchanges only (README.md, "What is intercepted").

import { STATUS_CODES } from 'node:http';

import { preflight, preflightNeeded } from './cors.js';
import { log, why } from './log.js';

// A refusal's HTTP status on the error page the browser shows.
const REFUSAL_STATUS = {
	denied_by_policy: 403,
	ssrf_blocked: 403,
	bad_request: 400,
	upstream_error: 502,
	timeout: 504,
	response_too_large: 502,
	overloaded: 503,
	policy_unavailable: 503,
	bridge_unavailable: 502,
	websocket_unsupported: 501,
	request_body_unavailable: 413,
};

// What to do with a request: 'pepd', 'local' (the browser resolves it
// without a network), 'websocket' or 'refuse'.
export function classify(url, headers) {
	let scheme;
	try {
		scheme = new URL(url).protocol;
	} catch {
		return 'refuse';
	}
	switch (scheme) {
	case 'http:':
	case 'https:':
		break;
	case 'data:':
	case 'blob:':
	case 'about:':
		return 'local';
	case 'ws:':
	case 'wss:':
		return 'websocket';
	default:
		return 'refuse';
	}
	// Firefox hands a WebSocket's opening handshake to interception as
	// an http(s) GET carrying Sec-WebSocket-Key.
	for (const [n] of headers)
		if (n.toLowerCase() === 'sec-websocket-key')
			return 'websocket';
	return 'pepd';
}

const escapeHtml = (s) => s.replace(/[&<>"']/g, (c) =>
	`&#${c.charCodeAt(0)};`);

// The page a browser shows for a refusal; X-Pexi-Refusal names the code
// for scripts.
export function refusalResponse(code, message, url) {
	const status = REFUSAL_STATUS[code] ?? 502;
	const html = '<!doctype html><meta charset="utf-8">' +
	    `<title>pexi: refused (${escapeHtml(code)})</title>` +
	    '<h1>Request refused</h1>' +
	    `<p>pepd refused <code>${escapeHtml(url)}</code>.</p>` +
	    `<p>Code: <strong id="pexi-refusal">${escapeHtml(code)}` +
	    '</strong></p>' +
	    `<p>${escapeHtml(message || '')}</p>\n`;
	return {
		status,
		headers: [['Content-Type', 'text/html; charset=utf-8'],
		    ['Cache-Control', 'no-store'], ['X-Pexi-Refusal', code]],
		bodyBase64: Buffer.from(html, 'utf8').toString('base64'),
		refused: code,
		message: message || '',
	};
}

export function reasonPhrase(status) {
	return STATUS_CODES[status] ?? '';
}

// Counters and time spent, for the visit records and bench-intercept.
export class Stats {
	mediated = 0;		// answered from pepd (a response)
	local = 0;		// continued: data:, blob:, about:
	failed = 0;		// failed: schemes nobody mediates
	refused = {};		// code -> count (pepd's, and the runner's own)
	eventMs = 0;		// the browser's event stamp to the runner
	busyMs = 0;		// the runner's event to its answer sent
	pepdMs = 0;		// runner -> bridge -> pepd -> origin and back
	ackMs = 0;		// the answer sent to the browser's ack

	refuse(code) {
		this.refused[code] = (this.refused[code] ?? 0) + 1;
	}

	snapshot() {
		return { mediated: this.mediated, local: this.local,
		    failed: this.failed, refused: { ...this.refused },
		    eventMs: this.eventMs, busyMs: this.busyMs,
		    pepdMs: this.pepdMs, ackMs: this.ackMs };
	}

	// What happened since snapshot s, for a visit's record.
	since(s) {
		const refused = {};
		for (const [k, v] of Object.entries(this.refused))
			if (v - (s.refused[k] ?? 0) > 0)
				refused[k] = v - (s.refused[k] ?? 0);
		const r1 = (x) => Math.round(x * 10) / 10;
		const pepd = this.pepdMs - s.pepdMs;
		// Sums over the requests, which overlap: time spent, not
		// time elapsed.
		return { mediated: this.mediated - s.mediated,
		    local: this.local - s.local, failed: this.failed - s.failed,
		    refused, event_ms: r1(this.eventMs - s.eventMs),
		    runner_ms: r1(this.busyMs - s.busyMs - pepd),
		    pepd_ms: r1(pepd), ack_ms: r1(this.ackMs - s.ackMs) };
	}
}

// Ask pepd. req: { method, url, headers: [[name, value]] (values as
// byte strings), body: Buffer or null }. Resolves with { status,
// headers, bodyBase64, refused } where refused is null or the code.
export async function askPepd(pool, req, stats) {
	const frame = { method: req.method, url: req.url,
	    headers: req.headers };
	if (req.body && req.body.length > 0)
		frame.body_base64 = req.body.toString('base64');
	const t0 = performance.now();
	let answer;
	try {
		answer = await pool.request(frame);
	} catch (err) {
		stats.pepdMs += performance.now() - t0;
		return refusalResponse(err.code ?? 'bridge_unavailable',
		    err.message, req.url);
	}
	stats.pepdMs += performance.now() - t0;
	if (answer.error) {
		const code = typeof answer.error.code === 'string' ?
		    answer.error.code : 'upstream_error';
		return refusalResponse(code, answer.error.message, req.url);
	}
	if (!Number.isInteger(answer.status) || !Array.isArray(answer.headers))
		return refusalResponse('upstream_error', 'pepd answered ' +
		    'without a status or headers', req.url);
	return { status: answer.status, headers: answer.headers,
	    bodyBase64: answer.body_base64 ?? '', refused: null };
}

// A header value as a byte string (each character one byte), which is
// what pepd's frames carry (PROTOCOL.md, "Header encoding").
export function byteString(s) {
	// eslint-disable-next-line no-control-regex
	return /^[\u0000-\u00ff]*$/.test(s) ? s :
	    Buffer.from(s, 'utf8').toString('latin1');
}

// The preflight Firefox does not make (cors.js); true if req may go.
async function corsAllows(ctx, req) {
	const names = preflightNeeded(req);
	if (names === null)
		return true;
	const no = await preflight((r) => askPepd(ctx.pool, r, ctx.stats), req,
	    names);
	if (no === null)
		return true;
	ctx.stats.refuse('cors_preflight');
	log.info(`${req.method} ${req.url}: CORS preflight failed: ${no}; ` +
	    'not sent, as a browser would not');
	return false;
}

// Decide one request. ctx: { pool, stats, preflight }; req: { method, url,
// headers }; getBody: an async function giving the body (a Buffer or
// null), called only for requests that go to pepd. Resolves with
// { action: 'continue' | 'fail' } or { action: 'respond', status,
// headers, bodyBase64, refused }.
export async function mediate(ctx, req, getBody) {
	const kind = classify(req.url, req.headers);
	switch (kind) {
	case 'local':
		ctx.stats.local++;
		return { action: 'continue' };
	case 'refuse':
		ctx.stats.failed++;
		log.warn(`${req.method} ${req.url}: scheme not mediated: ` +
		    'failed');
		return { action: 'fail' };
	case 'websocket':
		ctx.stats.refuse('websocket_unsupported');
		log.warn(`${req.url}: WebSocket handshake refused (pepd ` +
		    'mediates HTTP requests, not WebSocket connections)');
		return { action: 'respond', ...refusalResponse(
		    'websocket_unsupported', 'WebSocket connections are not ' +
		    'mediated', req.url) };
	default:
		break;
	}
	if (ctx.preflight && !await corsAllows(ctx, req))
		return { action: 'fail' };
	let body;
	try {
		body = await getBody();
	} catch (err) {
		ctx.stats.refuse('request_body_unavailable');
		log.warn(`${req.method} ${req.url}: request body not ` +
		    `available from the browser: ${why(err)}`);
		return { action: 'respond', ...refusalResponse(
		    'request_body_unavailable', why(err), req.url) };
	}
	const ans = await askPepd(ctx.pool, { ...req, body }, ctx.stats);
	if (ans.refused === 'bridge_unavailable') {
		ctx.stats.refuse(ans.refused);
		log.error(`${req.method} ${req.url}: no answer from pepd: ` +
		    ans.message);
	} else if (ans.refused) {
		ctx.stats.refuse(ans.refused);
		log.info(`${req.method} ${req.url}: refused: ${ans.refused}` +
		    (ans.message ? ` (${ans.message})` : ''));
	} else {
		ctx.stats.mediated++;
		log.debug(`${req.method} ${req.url}: ${ans.status}`);
	}
	return { action: 'respond', ...ans };
}
