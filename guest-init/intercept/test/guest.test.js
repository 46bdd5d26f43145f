// lib/guest.js: console lines, the poweroff command.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

import { GuestConsole, powerOff } from '../lib/guest.js';

test('a console line per note, with the uptime', async () => {
	const dir = await mkdtemp(join(tmpdir(), 'pexi-guest-'));
	const f = join(dir, 'console');
	const g = new GuestConsole(f);
	await g.note('browser connected: firefox/1');
	await g.note('powering off');
	const lines = (await readFile(f, 'utf8')).split('\n');
	assert.match(lines[0],
	    /^pexi-intercept: \[[0-9.]+\] browser connected: firefox\/1$/);
	assert.match(lines[1], /^pexi-intercept: \[[0-9.]+\] powering off$/);
	await rm(dir, { recursive: true });
});

test('no console: nothing written, no error', async () => {
	await new GuestConsole(null).note('x');
});

test('poweroff: true once the command started, false if it cannot', async () => {
	assert.equal(await powerOff('true'), true);
	assert.equal(await powerOff('/nonexistent/poweroff'), false);
});
