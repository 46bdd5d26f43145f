// lib/config.js: defaults, strictness, messages naming the key.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { ConfigError, parseConfig } from '../lib/config.js';

test('an empty object gives every default', () => {
	const c = parseConfig('{}');
	assert.equal(c.browser.protocol, 'webDriverBiDi');
	assert.equal(c.browser.endpoint, 'ws://127.0.0.1:9222/session');
	assert.equal(c.browser.pidfile, '/run/pexi/firefox.child');
	assert.deepEqual([c.bridge.host, c.bridge.port], ['127.0.0.1', 4040]);
	assert.deepEqual(c.visits, []);
	assert.equal(c.results, '/var/lib/pexi/results.jsonl');
});

test('a visit may be a URL or an object; defaults filled', () => {
	const c = parseConfig(JSON.stringify({ visits: ['http://a.test/',
	    { url: 'data:text/html,x', wait_for: '#done' }] }));
	assert.equal(c.visits[0].url, 'http://a.test/');
	assert.equal(c.visits[0].wait_until, 'load');
	assert.equal(c.visits[0].timeout_ms, 30000);
	assert.equal(c.visits[1].wait_for, '#done');
});

test('no console lines and no poweroff unless asked', () => {
	const c = parseConfig('{}');
	assert.equal(c.console, null);
	assert.equal(c.poweroff_after, false);
	const d = parseConfig('{"console": "/dev/console", ' +
	    '"poweroff_after": true}');
	assert.equal(d.console, '/dev/console');
	assert.equal(d.poweroff_after, true);
});

test('null switches results and the screenshot off', () => {
	const c = parseConfig('{"results": null, "screenshot": null}');
	assert.equal(c.results, null);
	assert.equal(c.screenshot, null);
});

const refused = [
	['[]', /top level: want an object/],
	['{"visit": []}', /unknown key 'visit'$/],
	['{"bridge": {"prot": 1}}', /unknown key 'prot' in 'bridge'/],
	['{"bridge": {"port": 0}}', /bridge.port: want an integer 1-65535/],
	['{"bridge": {"port": "4040"}}', /bridge.port: want an integer/],
	['{"browser": {"protocol": "bidi"}}', /browser.protocol: want one of/],
	['{"visits": [{"url": "file:///etc/passwd"}]}',
	    /visits\[0\].url: scheme file: not allowed/],
	['{"visits": [{"wait_for": "#x"}]}', /visits\[0\].url: missing/],
	['{"visits": [{"url": "http://a/", "timeout_ms": 1.5}]}',
	    /visits\[0\].timeout_ms: want an integer/],
	['{"visits": "http://a/"}', /visits: want an array/],
	['{"results": ""}', /results: want a non-empty string or null/],
	['{"a": ', /invalid JSON/],
	['{"poweroff_after": 1}', /poweroff_after: want true or false, got number/],
	['{"console": ""}', /console: want a non-empty string or null/],
];
for (const [text, want] of refused) {
	test(`refused: ${text}`, () => {
		assert.throws(() => parseConfig(text), (err) =>
		    err instanceof ConfigError && want.test(err.message));
	});
}
