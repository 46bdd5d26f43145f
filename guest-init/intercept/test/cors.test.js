// lib/cors.js: which requests Firefox should have preflighted, and
// whether a preflight's answer lets one through (the Fetch standard's
// CORS-preflight fetch and CORS check).
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { preflight, preflightNeeded, preflightVerdict } from '../lib/cors.js';

const FIREFOX = [['Host', 'api.c.test'], ['User-Agent', 'Mozilla/5.0'],
	['Accept', '*/*'], ['Accept-Language', 'en-US,en;q=0.9'],
	['Accept-Encoding', 'gzip, deflate'], ['Referer', 'http://www.a.test/'],
	['Connection', 'keep-alive']];
const req = (method, url, extra) => ({ method, url,
	headers: [...FIREFOX, ...extra] });
const ORIGIN = ['Origin', 'http://www.a.test'];

test('same-origin or no Origin: no preflight', () => {
	assert.equal(preflightNeeded(req('PUT', 'http://api.c.test/x',
	    [['X-Custom', '1']])), null);
	assert.equal(preflightNeeded(req('PUT', 'http://www.a.test/x',
	    [ORIGIN, ['X-Custom', '1']])), null);
});

test('cross-origin simple requests: no preflight', () => {
	assert.equal(preflightNeeded(req('GET', 'http://api.c.test/',
	    [ORIGIN])), null);
	assert.equal(preflightNeeded(req('POST', 'http://api.c.test/', [ORIGIN,
	    ['Content-Type', 'text/plain;charset=UTF-8'],
	    ['Content-Length', '4']])), null);
	assert.equal(preflightNeeded(req('POST', 'http://api.c.test/', [ORIGIN,
	    ['Content-Type', 'multipart/form-data; boundary=x'],
	    ['Sec-Fetch-Mode', 'cors'], ['Priority', 'u=4']])), null);
});

test('cross-origin: a method or an unsafe header needs one', () => {
	assert.deepEqual(preflightNeeded(req('PUT', 'http://api.c.test/',
	    [ORIGIN])), []);
	assert.deepEqual(preflightNeeded(req('POST', 'http://api.c.test/',
	    [ORIGIN, ['Content-Type', 'application/json'],
	    ['X-Custom', 'pexi']])), ['content-type', 'x-custom']);
	assert.deepEqual(preflightNeeded(req('GET', 'http://api.c.test/',
	    [ORIGIN, ['Accept-Language', 'en"']])), ['accept-language']);
});

const answer = (status, headers, refused = null) =>
	({ status, headers, refused });
const put = req('PUT', 'http://api.c.test/', [ORIGIN,
	['Content-Type', 'application/json'], ['X-Custom', 'pexi']]);
const names = ['content-type', 'x-custom'];
const allow = [['Access-Control-Allow-Origin', 'http://www.a.test'],
	['Access-Control-Allow-Methods', 'PUT'],
	['Access-Control-Allow-Headers', 'Content-Type, X-Custom']];

test('a preflight answer that allows', () => {
	assert.equal(preflightVerdict(put, names, answer(204, allow)), null);
	assert.equal(preflightVerdict(put, names, answer(200, [
	    ['access-control-allow-origin', '*'],
	    ['access-control-allow-methods', '*'],
	    ['access-control-allow-headers', '*']])), null);
});

test('preflight answers that do not', () => {
	const no = (a) => preflightVerdict(put, names, a);
	assert.match(no(answer(204, [])), /Allow-Origin is missing/);
	assert.match(no(answer(403, allow)), /status 403/);
	assert.match(no(answer(0, [], 'denied_by_policy')),
	    /pepd refused the preflight \(denied_by_policy\)/);
	assert.match(no(answer(204, [allow[0], allow[2]])),
	    /method PUT not allowed/);
	assert.match(no(answer(204, [allow[0], allow[1],
	    ['Access-Control-Allow-Headers', 'content-type']])),
	    /header x-custom not allowed/);
	assert.match(no(answer(204, [['Access-Control-Allow-Origin',
	    'http://evil.test'], allow[1], allow[2]])), /Allow-Origin is/);
});

test('credentials: no wildcard, Allow-Credentials needed', () => {
	const c = { ...put, headers: [...put.headers, ['Cookie', 'a=1']] };
	const star = [['Access-Control-Allow-Origin', '*'], allow[1], allow[2]];
	assert.match(preflightVerdict(c, names, answer(204, star)),
	    /Allow-Origin/);
	assert.match(preflightVerdict(c, names, answer(204, allow)),
	    /credentials not allowed/);
	assert.equal(preflightVerdict(c, names, answer(204, [...allow,
	    ['Access-Control-Allow-Credentials', 'true']])), null);
});

test('the preflight request itself', async () => {
	let sent;
	const no = await preflight(async (r) => {
		sent = r;
		return answer(204, allow);
	}, put, names);
	assert.equal(no, null);
	assert.equal(sent.method, 'OPTIONS');
	assert.equal(sent.url, 'http://api.c.test/');
	const h = Object.fromEntries(sent.headers);
	assert.equal(h.Origin, 'http://www.a.test');
	assert.equal(h['Access-Control-Request-Method'], 'PUT');
	assert.equal(h['Access-Control-Request-Headers'],
	    'content-type,x-custom');
	assert.equal(sent.body, null);
});
