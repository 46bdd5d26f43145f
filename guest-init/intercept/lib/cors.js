// The CORS preflight Firefox leaves out. Firefox implements WebDriver BiDi
// interception as it implements a service worker's: the request is taken
// before the network, so its CORS preflight never happens (measured on
// firefox-esr 153: a cross-origin PUT with a custom header reaches
// interception with no OPTIONS before it), while the browser still checks
// the final response's Access-Control-Allow-Origin. Sent on as it is, a
// page could make any origin pepd allows receive requests no browser on
// the open web would send. So for Firefox the runner makes the preflight
// itself, through pepd, and sends the request only if the origin allows
// it (Fetch standard, "CORS-preflight fetch"); Chromium preflights by
// itself and its OPTIONS is intercepted like any request.
//
// Which requests: cross-origin (an Origin header other than the URL's
// origin) with a method other than GET, HEAD or POST, or with a header
// that is neither CORS-safelisted nor one the browser sets itself. A
// request of mode no-cors cannot carry either, so these are cors-mode
// requests. Credentials are taken to be included when the request carries
// a Cookie or Authorization header (BiDi does not give the mode). Preflight
// answers are not cached.

const SAFE_METHODS = new Set(['GET', 'HEAD', 'POST']);
// Forbidden request-header names (Fetch), and what Firefox adds itself.
const BROWSER_SET = new Set(['accept-charset', 'accept-encoding',
	'access-control-request-headers', 'access-control-request-method',
	'connection', 'content-length', 'cookie', 'cookie2', 'date', 'dnt',
	'expect', 'host', 'keep-alive', 'origin', 'referer', 'set-cookie',
	'te', 'trailer', 'transfer-encoding', 'upgrade', 'via', 'user-agent',
	'priority', 'upgrade-insecure-requests']);
const SAFE_TYPES = new Set(['application/x-www-form-urlencoded',
	'multipart/form-data', 'text/plain']);
// eslint-disable-next-line no-control-regex
const UNSAFE_BYTE = /[\u0000-\u0008\u000a-\u001f"():<>?@[\\\]{}\u007f]/;

function safelisted(name, value) {
	if (value.length > 128)
		return false;
	switch (name) {
	case 'accept':
		return !UNSAFE_BYTE.test(value);
	case 'accept-language':
	case 'content-language':
		return /^[0-9A-Za-z *,\-.;=]*$/.test(value);
	case 'content-type':
		return !UNSAFE_BYTE.test(value) && SAFE_TYPES.has(
		    value.split(';')[0].trim().toLowerCase());
	case 'range':
		return /^bytes=\d+-\d*$/.test(value);
	default:
		return false;
	}
}

function header(headers, name) {
	for (const [n, v] of headers)
		if (n.toLowerCase() === name)
			return v;
	return undefined;
}

// The header names a preflight must ask for, or null when the request
// needs no preflight.
export function preflightNeeded(req) {
	const origin = header(req.headers, 'origin');
	if (origin === undefined)
		return null;
	let target;
	try {
		target = new URL(req.url).origin;
	} catch {
		return null;
	}
	if (origin === target)
		return null;
	const unsafe = new Set();
	for (const [n, v] of req.headers) {
		const name = n.toLowerCase();
		if (!BROWSER_SET.has(name) && !name.startsWith('sec-') &&
		    !name.startsWith('proxy-') && !safelisted(name, v))
			unsafe.add(name);
	}
	if (SAFE_METHODS.has(req.method) && unsafe.size === 0)
		return null;
	return [...unsafe].sort();
}

const list = (v) => (v ?? '').split(',').map((s) => s.trim())
	.filter((s) => s !== '');

// Whether the preflight's answer allows req; null if so, else why not.
export function preflightVerdict(req, names, ans) {
	const origin = header(req.headers, 'origin');
	const credentialed = header(req.headers, 'cookie') !== undefined ||
	    header(req.headers, 'authorization') !== undefined;
	if (ans.refused)
		return `pepd refused the preflight (${ans.refused})`;
	if (ans.status < 200 || ans.status > 299)
		return `the preflight got status ${ans.status}`;
	const acao = header(ans.headers, 'access-control-allow-origin');
	if (acao !== origin && !(acao === '*' && !credentialed))
		return `Access-Control-Allow-Origin is ${acao ?? 'missing'}`;
	if (credentialed && header(ans.headers,
	    'access-control-allow-credentials') !== 'true')
		return 'credentials not allowed';
	const methods = list(header(ans.headers,
	    'access-control-allow-methods'));
	if (!SAFE_METHODS.has(req.method) && !methods.includes(req.method) &&
	    !(methods.includes('*') && !credentialed))
		return `method ${req.method} not allowed`;
	const allowed = list(header(ans.headers,
	    'access-control-allow-headers')).map((s) => s.toLowerCase());
	for (const n of names)
		if (!allowed.includes(n) && !(allowed.includes('*') &&
		    !credentialed && n !== 'authorization'))
			return `header ${n} not allowed`;
	return null;
}

// Make req's preflight; ask sends a request to pepd (mediate.js askPepd).
// Resolves with null if the request may go, else why not.
export async function preflight(ask, req, names) {
	const headers = [['Accept', '*/*'],
	    ['Origin', header(req.headers, 'origin')],
	    ['Access-Control-Request-Method', req.method]];
	if (names.length > 0)
		headers.push(['Access-Control-Request-Headers',
		    names.join(',')]);
	for (const n of ['user-agent', 'referer', 'accept-language']) {
		const v = header(req.headers, n);
		if (v !== undefined)
			headers.push([n, v]);
	}
	const ans = await ask({ method: 'OPTIONS', url: req.url, headers,
	    body: null });
	return preflightVerdict(req, names, ans);
}
