// pepd's wire protocol (pepd/PROTOCOL.md) over persistent TCP connections
// to pexi-bridge: a frame is a 4-byte big-endian length and one JSON
// object; answers come back in request order on each connection, and a
// connection may carry several requests at once (pipelining).
//
// The pool opens connections lazily, up to `connections`: a request goes
// to an idle connection, else to a new one, else to the connection with
// the fewest answers outstanding (pepd works on up to 16 per connection
// concurrently and answers them in order).

import net from 'node:net';

// Response frames are not bounded by pepd's max_frame: 64 MiB of body as
// base64 plus headers (PROTOCOL.md, "Framing").
const MAX_ANSWER = 96 << 20;
const CONNECT_TRIES = 3;
const CONNECT_PAUSE_MS = 250;

// The bridge or pepd could not answer: code is the runner's own refusal
// code for the error page ("bridge_unavailable").
export class BridgeError extends Error {
	constructor(msg) {
		super(msg);
		this.code = 'bridge_unavailable';
	}
}

export function encodeFrame(obj) {
	const payload = Buffer.from(JSON.stringify(obj), 'utf8');
	const head = Buffer.allocUnsafe(4);
	head.writeUInt32BE(payload.length, 0);
	return [head, payload];
}

// Splits a byte stream into frames; push() returns the complete payloads.
export class FrameReader {
	#chunks = [];
	#have = 0;
	#need = -1;

	push(chunk) {
		const out = [];
		this.#chunks.push(chunk);
		this.#have += chunk.length;
		for (;;) {
			if (this.#need < 0) {
				if (this.#have < 4)
					break;
				this.#need = this.#take(4).readUInt32BE(0);
				if (this.#need > MAX_ANSWER)
					throw new BridgeError('an answer of ' +
					    `${this.#need} bytes`);
			}
			if (this.#have < this.#need)
				break;
			out.push(this.#take(this.#need));
			this.#need = -1;
		}
		return out;
	}

	#take(n) {
		const all = this.#chunks.length === 1 ? this.#chunks[0] :
		    Buffer.concat(this.#chunks, this.#have);
		const head = all.subarray(0, n);
		const rest = all.subarray(n);
		this.#chunks = rest.length > 0 ? [rest] : [];
		this.#have = rest.length;
		return head;
	}
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

class PepdConn {
	#pool;
	#sock = null;
	#reader = new FrameReader();
	#ready;
	pending = [];
	dead = false;

	constructor(pool) {
		this.#pool = pool;
		this.#ready = this.#open();
		// A failed open is reported to each request through send().
		this.#ready.catch(() => {});
	}

	async #open() {
		let last;
		for (let i = 0; i < CONNECT_TRIES; i++) {
			if (i > 0)
				await sleep(CONNECT_PAUSE_MS);
			try {
				this.#sock = await this.#connect();
				return;
			} catch (err) {
				last = err;
			}
		}
		const { host, port } = this.#pool.opts;
		this.#fail(new BridgeError(`cannot connect to pexi-bridge at ` +
		    `${host}:${port}: ${last.message}`));
		throw last;
	}

	#connect() {
		const { host, port } = this.#pool.opts;
		return new Promise((resolve, reject) => {
			const s = net.connect({ host, port, noDelay: true });
			s.once('error', reject);
			s.once('connect', () => {
				s.off('error', reject);
				s.on('error', (err) => this.#fail(
				    new BridgeError('pexi-bridge connection: ' +
				    err.message)));
				s.on('close', () => this.#fail(new BridgeError(
				    'pexi-bridge closed the connection')));
				s.on('data', (chunk) => this.#data(chunk));
				resolve(s);
			});
		});
	}

	#data(chunk) {
		let frames;
		try {
			frames = this.#reader.push(chunk);
		} catch (err) {
			this.#fail(err);
			return;
		}
		for (const f of frames) {
			const p = this.pending.shift();
			if (p === undefined) {
				this.#fail(new BridgeError('an answer nobody ' +
				    'asked for'));
				return;
			}
			clearTimeout(p.timer);
			let answer;
			try {
				answer = JSON.parse(f.toString('utf8'));
			} catch (err) {
				p.reject(new BridgeError('answer is not ' +
				    `JSON: ${err.message}`));
				this.#fail(new BridgeError('bad answer'));
				return;
			}
			p.resolve(answer);
		}
	}

	// Everything outstanding fails; the pool forgets this connection.
	#fail(err) {
		if (!this.dead) {
			this.dead = true;
			this.#pool.forget(this);
			this.#sock?.destroy();
		}
		for (const p of this.pending.splice(0)) {
			clearTimeout(p.timer);
			p.reject(err);
		}
	}

	send(obj) {
		return new Promise((resolve, reject) => {
			const timeout = this.#pool.opts.timeout_ms;
			const p = { resolve, reject, timer: null };
			// A late answer would shift every later one: the
			// connection goes.
			p.timer = setTimeout(() => this.#fail(new BridgeError(
			    `no answer in ${timeout} ms`)), timeout);
			this.pending.push(p);
			const frame = encodeFrame(obj);
			this.#ready.then(() => {
				if (this.dead)
					return;
				this.#sock.cork();
				this.#sock.write(frame[0]);
				this.#sock.write(frame[1]);
				this.#sock.uncork();
			}, (err) => this.#fail(err instanceof BridgeError ?
			    err : new BridgeError(err.message)));
		});
	}

	close() {
		this.#fail(new BridgeError('runner shutting down'));
	}
}

export class PepdPool {
	#conns = [];
	opts;
	opened = 0;

	// opts: { host, port, connections, timeout_ms }
	constructor(opts) {
		this.opts = opts;
	}

	#pick() {
		let best = null;
		for (const c of this.#conns) {
			if (c.pending.length === 0)
				return c;
			if (best === null ||
			    c.pending.length < best.pending.length)
				best = c;
		}
		if (this.#conns.length < this.opts.connections) {
			const c = new PepdConn(this);
			this.#conns.push(c);
			this.opened++;
			return c;
		}
		return best;
	}

	// One request; resolves with pepd's answer (a response or a
	// refusal), rejects with a BridgeError.
	request(obj) {
		return this.#pick().send(obj);
	}

	forget(conn) {
		const i = this.#conns.indexOf(conn);
		if (i >= 0)
			this.#conns.splice(i, 1);
	}

	get size() {
		return this.#conns.length;
	}

	close() {
		for (const c of this.#conns.slice())
			c.close();
	}
}
