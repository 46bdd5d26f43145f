// One log line per event on stderr: "TIME pexi-intercept: LEVEL: message".
// pexi-boot sends it to /var/log/pexi/runner.log. PEXI_DEBUG=1 adds the
// debug lines (one per mediated request).

const debugOn = Boolean(process.env.PEXI_DEBUG);

function line(level, msg) {
	process.stderr.write(`${new Date().toISOString()} pexi-intercept: ` +
	    `${level}: ${msg}\n`);
}

export const log = {
	debugOn,
	debug(msg) {
		if (debugOn)
			line('debug', msg);
	},
	info(msg) { line('info', msg); },
	warn(msg) { line('warn', msg); },
	error(msg) { line('error', msg); },
};

// The message of anything thrown, on one line.
export function why(err) {
	let m;
	if (err instanceof Error)
		m = err.message;
	else if (typeof err?.message === 'string')	// a ws ErrorEvent
		m = err.message;
	else if (err?.error instanceof Error)
		m = err.error.message;
	else
		m = String(err);
	return m.split('\n')[0];
}
