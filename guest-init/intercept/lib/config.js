// /etc/pexi/config.json: what the runner connects to, what it visits and
// where it reports (README.md, "Configuration"). Strict like pepd.conf(5):
// an unknown key, a wrong type or an out-of-range number is an error
// naming the file and the key, so a typo cannot pass silently.

import { readFile } from 'node:fs/promises';

export const DEFAULT_PATH = '/etc/pexi/config.json';
const MAX_BYTES = 1 << 20;
const WAIT_UNTIL = ['load', 'domcontentloaded', 'networkidle0',
	'networkidle2'];

// A key's rule: type, default, and bounds or choices.
const str = (def) => ({ type: 'string', def });
const strOrNull = (def) => ({ type: 'string', def, nullable: true });
const int = (def, min, max) => ({ type: 'int', def, min, max });
const bool = (def) => ({ type: 'bool', def });
const oneOf = (def, values) => ({ type: 'enum', def, values });

const SCHEMA = {
	browser: { type: 'object', keys: {
		protocol: oneOf('webDriverBiDi', ['webDriverBiDi', 'cdp']),
		endpoint: str('ws://127.0.0.1:9222/session'),
		connect_timeout_ms: int(180000, 0, 3600000),
		// Firefox's own pid, written by pexi-firefox under pexi-boot.
		pidfile: strOrNull('/run/pexi/firefox.child'),
	} },
	bridge: { type: 'object', keys: {
		host: str('127.0.0.1'),
		port: int(4040, 1, 65535),
		connections: int(8, 1, 64),
		timeout_ms: int(120000, 1000, 3600000),
	} },
	visits: { type: 'array', def: [] },
	results: strOrNull('/var/lib/pexi/results.jsonl'),
	screenshot: strOrNull('/var/lib/pexi/screenshot.png'),
	// A file (a device: /dev/console) that gets a line per milestone.
	console: strOrNull(null),
	// After the visits, power the machine off (lib/guest.js).
	poweroff_after: bool(false),
};

const VISIT = {
	url: { type: 'string', required: true },
	wait_until: oneOf('load', WAIT_UNTIL),
	wait_for: strOrNull(null),
	timeout_ms: int(30000, 100, 3600000),
	settle_ms: int(0, 0, 600000),
};

export class ConfigError extends Error {}

function typeName(v) {
	if (v === null)
		return 'null';
	return Array.isArray(v) ? 'array' : typeof v;
}

function checkValue(rule, v, where) {
	if (v === null && rule.nullable)
		return null;
	switch (rule.type) {
	case 'string':
		if (typeof v !== 'string' || v === '')
			throw new ConfigError(`${where}: want a non-empty ` +
			    `string${rule.nullable ? ' or null' : ''}, ` +
			    `got ${typeName(v)}`);
		return v;
	case 'int':
		if (!Number.isInteger(v) || v < rule.min || v > rule.max)
			throw new ConfigError(`${where}: want an integer ` +
			    `${rule.min}-${rule.max}, got ` +
			    JSON.stringify(v));
		return v;
	case 'bool':
		if (typeof v !== 'boolean')
			throw new ConfigError(`${where}: want true or false, ` +
			    `got ${typeName(v)}`);
		return v;
	case 'enum':
		if (!rule.values.includes(v))
			throw new ConfigError(`${where}: want one of ` +
			    `${rule.values.join(', ')}, got ` +
			    JSON.stringify(v));
		return v;
	default:
		throw new Error(`config: rule type ${rule.type}`);
	}
}

function checkObject(keys, obj, where) {
	if (typeName(obj) !== 'object')
		throw new ConfigError(`${where || 'top level'}: want an ` +
		    `object, got ${typeName(obj)}`);
	for (const k of Object.keys(obj))
		if (!(k in keys))
			throw new ConfigError(`unknown key '${k}'` +
			    (where ? ` in '${where}'` : ''));
	const out = {};
	for (const [k, rule] of Object.entries(keys)) {
		const at = where ? `${where}.${k}` : k;
		if (!(k in obj)) {
			if (rule.required)
				throw new ConfigError(`${at}: missing`);
			out[k] = rule.type === 'object' ?
			    checkObject(rule.keys, {}, at) : rule.def;
		} else if (rule.type === 'object')
			out[k] = checkObject(rule.keys, obj[k], at);
		else if (rule.type === 'array')
			out[k] = checkVisits(obj[k], at);
		else
			out[k] = checkValue(rule, obj[k], at);
	}
	return out;
}

// A visit's URL: what a browser can load without a network of its own.
function checkUrl(s, where) {
	let u;
	try {
		u = new URL(s);
	} catch {
		throw new ConfigError(`${where}: not a URL: ` +
		    JSON.stringify(s));
	}
	if (!['http:', 'https:', 'data:', 'about:'].includes(u.protocol))
		throw new ConfigError(`${where}: scheme ${u.protocol} not ` +
		    'allowed (http, https, data, about)');
	return s;
}

function checkVisits(list, where) {
	if (!Array.isArray(list))
		throw new ConfigError(`${where}: want an array, got ` +
		    `${typeName(list)}`);
	return list.map((v, i) => {
		const at = `${where}[${i}]`;
		const visit = checkObject(VISIT, typeof v === 'string' ?
		    { url: v } : v, at);
		visit.url = checkUrl(visit.url, `${at}.url`);
		return visit;
	});
}

// The configuration from JSON text; throws ConfigError.
export function parseConfig(text) {
	let obj;
	try {
		obj = JSON.parse(text);
	} catch (err) {
		throw new ConfigError(`invalid JSON: ${err.message}`);
	}
	return checkObject(SCHEMA, obj, '');
}

// The configuration in file; throws ConfigError naming the file.
export async function loadConfig(file) {
	let text;
	try {
		text = await readFile(file, 'utf8');
	} catch (err) {
		throw new ConfigError(`${file}: ${err.message}`);
	}
	if (Buffer.byteLength(text) > MAX_BYTES)
		throw new ConfigError(`${file}: larger than ${MAX_BYTES} ` +
		    'bytes');
	try {
		return parseConfig(text);
	} catch (err) {
		if (err instanceof ConfigError)
			throw new ConfigError(`${file}: ${err.message}`);
		throw err;
	}
}
