// lib/pepd.js and lib/mediate.js against a fake pepd: framing split at
// every byte, pipelined answers in order, a connection pool, refusals and
// a vanished bridge as error pages.
import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';

import { classify, mediate, Stats } from '../lib/mediate.js';
import { encodeFrame, FrameReader, PepdPool } from '../lib/pepd.js';

test('FrameReader: frames split at every byte, and several in one chunk',
    () => {
	const frames = [{ a: 1 }, { b: 'x'.repeat(300) }, {}].map((o) =>
	    Buffer.concat(encodeFrame(o)));
	const all = Buffer.concat(frames);
	const r = new FrameReader();
	const got = [];
	for (let i = 0; i < all.length; i++)
		got.push(...r.push(all.subarray(i, i + 1)));
	assert.deepEqual(got.map((b) => JSON.parse(b)), [{ a: 1 },
	    { b: 'x'.repeat(300) }, {}]);
	assert.equal(new FrameReader().push(all).length, 3);
});

// A pepd that answers each request after delay(req) ms, in order per
// connection, echoing the URL and the body's length.
function fakePepd(delay) {
	const conns = [];
	const srv = net.createServer((s) => {
		conns.push(s);
		const r = new FrameReader();
		let chain = Promise.resolve();
		s.on('data', (d) => {
			for (const f of r.push(d)) {
				const q = JSON.parse(f);
				const wait = delay(q);
				const done = new Promise((res) =>
				    setTimeout(res, wait).unref());
				chain = chain.then(() => done).then(() => {
					if (s.destroyed)
						return;
					const body = Buffer.from(
					    q.body_base64 ?? '', 'base64');
					const ans = q.url.includes('deny') ?
					    { error: { code: 'denied_by_policy',
						message: 'no' } } :
					    { status: 200, headers: [['X-Len',
						String(body.length)]],
						body_base64: Buffer.from(q.url)
						.toString('base64'),
						error: null };
					for (const b of encodeFrame(ans))
						s.write(b);
				});
			}
		});
	});
	return new Promise((resolve) => srv.listen(0, '127.0.0.1', () =>
	    resolve({ srv, conns, port: srv.address().port })));
}

test('pipelined answers come back to the right requests', async () => {
	const f = await fakePepd((q) => (q.url.endsWith('/slow') ? 50 : 0));
	const pool = new PepdPool({ host: '127.0.0.1', port: f.port,
	    connections: 2, timeout_ms: 5000 });
	const urls = ['http://a.test/slow', ...Array.from({ length: 40 },
	    (_, i) => `http://a.test/${i}`)];
	const got = await Promise.all(urls.map((url) => pool.request(
	    { method: 'GET', url, headers: [] })));
	assert.deepEqual(got.map((a) => Buffer.from(a.body_base64, 'base64')
	    .toString()), urls);
	assert.equal(pool.size, 2);
	pool.close();
	f.srv.close();
});

test('mediate: bodies, refusals and local schemes', async () => {
	const f = await fakePepd(() => 0);
	const ctx = { pool: new PepdPool({ host: '127.0.0.1', port: f.port,
	    connections: 4, timeout_ms: 5000 }), stats: new Stats(),
	    preflight: true };
	const body = Buffer.from([0, 1, 2, 255, 254, 128]);
	const a = await mediate(ctx, { method: 'POST', url: 'http://a.test/p',
	    headers: [] }, async () => body);
	assert.equal(a.action, 'respond');
	assert.deepEqual(a.headers, [['X-Len', '6']]);
	const d = await mediate(ctx, { method: 'GET',
	    url: 'http://deny.test/', headers: [] }, async () => null);
	assert.equal(d.status, 403);
	assert.equal(d.refused, 'denied_by_policy');
	assert.match(Buffer.from(d.bodyBase64, 'base64').toString(),
	    /<title>pexi: refused \(denied_by_policy\)<\/title>/);
	assert.deepEqual(d.headers.find(([n]) => n === 'X-Pexi-Refusal'),
	    ['X-Pexi-Refusal', 'denied_by_policy']);
	const l = await mediate(ctx, { method: 'GET', url: 'data:,x',
	    headers: [] }, async () => null);
	assert.equal(l.action, 'continue');
	const ws = await mediate(ctx, { method: 'GET',
	    url: 'http://a.test/ws', headers: [['Sec-WebSocket-Key', 'k']] },
	    async () => null);
	assert.equal(ws.refused, 'websocket_unsupported');
	assert.deepEqual([ctx.stats.mediated, ctx.stats.local,
	    ctx.stats.refused], [1, 1, { denied_by_policy: 1,
	    websocket_unsupported: 1 }]);
	ctx.pool.close();
	f.srv.close();
});

test('a bridge that goes away: bridge_unavailable, then a new connection',
    async () => {
	const f = await fakePepd((q) => (q.url.endsWith('/hang') ? 60000 : 0));
	const ctx = { pool: new PepdPool({ host: '127.0.0.1', port: f.port,
	    connections: 1, timeout_ms: 5000 }), stats: new Stats() };
	const hung = mediate(ctx, { method: 'GET', url: 'http://a.test/hang',
	    headers: [] }, async () => null);
	await new Promise((res) => setTimeout(res, 100));
	for (const s of f.conns)
		s.destroy();
	const a = await hung;
	assert.equal(a.refused, 'bridge_unavailable');
	assert.equal(a.status, 502);
	const b = await mediate(ctx, { method: 'GET', url: 'http://a.test/ok',
	    headers: [] }, async () => null);
	assert.equal(b.status, 200);
	ctx.pool.close();
	f.srv.close();
});

test('no bridge at all: bridge_unavailable after the retries', async () => {
	const ctx = { pool: new PepdPool({ host: '127.0.0.1', port: 1,
	    connections: 1, timeout_ms: 5000 }), stats: new Stats() };
	const a = await mediate(ctx, { method: 'GET', url: 'http://a.test/',
	    headers: [] }, async () => null);
	assert.equal(a.refused, 'bridge_unavailable');
	assert.match(a.message, /cannot connect to pexi-bridge at 127.0.0.1:1/);
});

test('classify', () => {
	assert.equal(classify('https://a.test/', []), 'pepd');
	assert.equal(classify('blob:http://a.test/1', []), 'local');
	assert.equal(classify('about:blank', []), 'local');
	assert.equal(classify('ws://a.test/', []), 'websocket');
	assert.equal(classify('file:///etc/passwd', []), 'refuse');
	assert.equal(classify('not a url', []), 'refuse');
});
