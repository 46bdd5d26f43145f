/*
 * console= rewriting in bootloader configuration text.
 *
 * A "command line" is a run of whitespace-separated arguments inside one
 * line: after the kernel path of a grub.cfg linux line, after an
 * extlinux APPEND, or inside the value of a shell-style assignment. In
 * each, the first console= argument is replaced by the wanted list and
 * later ones are dropped together with the gap before them (the gap
 * after them when the word before ends in a backslash); a command line
 * without any gets the list appended after its last argument.
 * Everything else, including line ends (LF or CRLF) and a missing final
 * newline, is copied byte for byte. Comment lines never match.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "edit.h"

struct sbuf {
	char *p;
	size_t len;
	size_t cap;
	int oom;
};

struct cons {
	const char *const *v;
	size_t n;
};

/* A quoted or bare shell assignment value: s[vs..ve), quote or 0. */
struct value {
	size_t vs;
	size_t ve;
	char quote;
};

static void
sb_add(struct sbuf *b, const char *s, size_t n)
{
	size_t cap;
	char *np;

	if (b->oom || n == 0)
		return;
	if (b->cap - b->len <= n) {
		cap = b->cap ? b->cap : 256;
		while (cap - b->len <= n)
			cap *= 2;
		np = realloc(b->p, cap);
		if (np == NULL) {
			b->oom = 1;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void
sb_str(struct sbuf *b, const char *s)
{
	sb_add(b, s, strlen(s));
}

static int
is_ws(char c)
{
	return c == ' ' || c == '\t';
}

static size_t
skip_ws(const char *s, size_t i, size_t n)
{
	while (i < n && is_ws(s[i]))
		i++;
	return i;
}

static size_t
skip_word(const char *s, size_t i, size_t n)
{
	while (i < n && !is_ws(s[i]))
		i++;
	return i;
}

static int
is_console(const char *w, size_t n)
{
	return n >= 8 && memcmp(w, "console=", 8) == 0;
}

static void
add_consoles(struct sbuf *b, const struct cons *c)
{
	size_t i;

	for (i = 0; i < c->n; i++) {
		if (i > 0)
			sb_str(b, " ");
		sb_str(b, "console=");
		sb_str(b, c->v[i]);
	}
}

/*
 * Rewrite the arguments in s[0..n) into b. lead: a word precedes the
 * region, so an appended list needs a separating space. append: add the
 * list when no console= is found. Returns 1 if a console= was found.
 */
static int
args_rewrite(struct sbuf *b, const char *s, size_t n, const struct cons *c,
    int lead, int append)
{
	size_t i = 0, ws, we, next;
	int found = 0, words = 0;

	while (i < n) {
		ws = skip_ws(s, i, n);
		if (ws == n)
			break;
		we = skip_word(s, ws, n);
		next = we;
		if (!is_console(s + ws, we - ws)) {
			sb_add(b, s + i, we - i);
		} else if (!found) {
			sb_add(b, s + i, ws - i);
			add_consoles(b, c);
		} else if (b->len > 0 && b->p[b->len - 1] == '\\') {
			/*
			 * Keep the gap a backslash ends with (else it would
			 * escape a closing quote or the line end); drop the
			 * gap after the word instead.
			 */
			sb_add(b, s + i, ws - i);
			if (skip_ws(s, we, n) < n)
				next = skip_ws(s, we, n);
		}
		/* A later console= goes with the gap before it. */
		found |= is_console(s + ws, we - ws);
		words = 1;
		i = next;
	}
	if (!found && append) {
		if (lead || words)
			sb_str(b, " ");
		add_consoles(b, c);
	}
	sb_add(b, s + i, n - i);
	return found;
}

/* 1 if s[0..n) has a console= argument. */
static int
has_console(const char *s, size_t n)
{
	size_t i = 0, ws, we;

	while (i < n) {
		ws = skip_ws(s, i, n);
		we = skip_word(s, ws, n);
		if (we > ws && is_console(s + ws, we - ws))
			return 1;
		i = we;
	}
	return 0;
}

/* First word of the line (after blanks): [*ws, *we). */
static void
first_word(const char *s, size_t n, size_t *ws, size_t *we)
{
	*ws = skip_ws(s, 0, n);
	*we = skip_word(s, *ws, n);
}

static int
word_is(const char *s, size_t ws, size_t we, const char *w, int icase)
{
	size_t len = strlen(w);

	if (we - ws != len)
		return 0;
	if (icase)
		return strncasecmp(s + ws, w, len) == 0;
	return memcmp(s + ws, w, len) == 0;
}

/* grub.cfg: linux/linuxefi/linux16 PATH ARGS... */
static void
line_grub_cfg(struct sbuf *b, const char *s, size_t n, const struct cons *c)
{
	size_t ws, we, ps, pe;

	first_word(s, n, &ws, &we);
	if (!word_is(s, ws, we, "linux", 0) &&
	    !word_is(s, ws, we, "linuxefi", 0) &&
	    !word_is(s, ws, we, "linux16", 0)) {
		sb_add(b, s, n);
		return;
	}
	ps = skip_ws(s, we, n);
	pe = skip_word(s, ps, n);
	if (pe == ps) {		/* no kernel path: not a command line */
		sb_add(b, s, n);
		return;
	}
	sb_add(b, s, pe);
	args_rewrite(b, s + pe, n - pe, c, 1, 1);
}

/* extlinux.conf: APPEND ARGS... (keyword case-insensitive) */
static void
line_extlinux(struct sbuf *b, const char *s, size_t n, const struct cons *c)
{
	size_t ws, we;

	first_word(s, n, &ws, &we);
	if (!word_is(s, ws, we, "append", 1)) {
		sb_add(b, s, n);
		return;
	}
	sb_add(b, s, we);
	args_rewrite(b, s + we, n - we, c, 1, 1);
}

/*
 * Match "[export ]NAME=" at the start of the line and locate its value.
 * A double- or single-quoted value ends at its closing quote, which must
 * end the shell word; a bare value ends at the first blank and may not
 * hold quotes or shell syntax. Anything else (a value continued on the
 * next line, concatenated quoting) does not match: the line is kept.
 */
static int
find_value(const char *s, size_t n, const char *name, struct value *v)
{
	size_t i, len = strlen(name);

	i = skip_ws(s, 0, n);
	if (n - i > 7 && memcmp(s + i, "export", 6) == 0 && is_ws(s[i + 6]))
		i = skip_ws(s, i + 6, n);
	if (n - i <= len || memcmp(s + i, name, len) != 0 ||
	    s[i + len] != '=')
		return 0;
	i += len + 1;
	v->quote = 0;
	if (i < n && (s[i] == '"' || s[i] == '\'')) {
		v->quote = s[i];
		v->vs = ++i;
		while (i < n && s[i] != v->quote) {
			if (v->quote == '"' && s[i] == '\\' && i + 1 < n)
				i++;
			i++;
		}
		/* Unterminated, or glued to more shell word: not ours. */
		if (i >= n || (i + 1 < n && !is_ws(s[i + 1])))
			return 0;
		v->ve = i;
		return 1;
	}
	v->vs = i;
	v->ve = skip_word(s, i, n);
	/* A bare word with quoting or expansions is beyond this parser. */
	for (; i < v->ve; i++)
		if (strchr("\"'`\\$;&|<>()", s[i]) != NULL || s[i] == '\0')
			return 0;
	return 1;
}

/*
 * Rewrite the value of a matched assignment; a bare value gets double
 * quotes if it now holds blanks.
 */
static int
rewrite_value(struct sbuf *b, const char *s, size_t n, const struct value *v,
    const struct cons *c, int append)
{
	struct sbuf t = { NULL, 0, 0, 0 };
	int found;

	if (v->quote != 0) {
		sb_add(b, s, v->vs);
		found = args_rewrite(b, s + v->vs, v->ve - v->vs, c, 0, append);
		sb_add(b, s + v->ve, n - v->ve);
		return found;
	}
	found = args_rewrite(&t, s + v->vs, v->ve - v->vs, c, 0, append);
	b->oom |= t.oom;
	sb_add(b, s, v->vs);
	if (t.len > 0 && (memchr(t.p, ' ', t.len) != NULL ||
	    memchr(t.p, '\t', t.len) != NULL)) {
		sb_str(b, "\"");
		sb_add(b, t.p, t.len);
		sb_str(b, "\"");
	} else {
		sb_add(b, t.p, t.len);
	}
	sb_add(b, s + v->ve, n - v->ve);
	free(t.p);
	return found;
}

struct ctx {
	struct cons c;
	size_t append_line;	/* default grub: the line to append to */
	int append;		/* ... if any */
};

typedef void line_fn(struct sbuf *, const char *, size_t, size_t,
    const struct ctx *);

static void
line_grub_cfg_fn(struct sbuf *b, const char *s, size_t n, size_t idx,
    const struct ctx *cx)
{
	(void)idx;
	line_grub_cfg(b, s, n, &cx->c);
}

static void
line_extlinux_fn(struct sbuf *b, const char *s, size_t n, size_t idx,
    const struct ctx *cx)
{
	(void)idx;
	line_extlinux(b, s, n, &cx->c);
}

/*
 * /etc/default/grub: both variables end up on the kernel command line
 * (GRUB_CMDLINE_LINUX, then _DEFAULT); each assignment has its console=
 * arguments replaced in place. Only when none has any are the consoles
 * appended, to the last (effective) GRUB_CMDLINE_LINUX_DEFAULT.
 */
static void
line_default_grub(struct sbuf *b, const char *s, size_t n, size_t idx,
    const struct ctx *cx)
{
	struct value v;

	if (find_value(s, n, "GRUB_CMDLINE_LINUX_DEFAULT", &v))
		rewrite_value(b, s, n, &v, &cx->c,
		    cx->append && idx == cx->append_line);
	else if (find_value(s, n, "GRUB_CMDLINE_LINUX", &v))
		rewrite_value(b, s, n, &v, &cx->c, 0);
	else
		sb_add(b, s, n);
}

/* 1 if the serial device (before any ",speed") is one of the consoles. */
static int
serial_is_console(const char *s, size_t n, const struct cons *c)
{
	size_t i, dn, k;

	dn = 0;
	while (dn < n && s[dn] != ',')
		dn++;
	for (i = 0; i < c->n; i++) {
		k = strcspn(c->v[i], ",");
		if (k == dn && memcmp(c->v[i], s, dn) == 0)
			return 1;
	}
	return 0;
}

/*
 * /etc/update-extlinux.conf: default_kernel_opts is a command line.
 * serial_port names the UART syslinux itself talks to; a console such
 * as hvc0 is no UART syslinux can drive, so unless the port is one of
 * the wanted consoles the value is emptied (the line stays).
 */
static void
line_update_extlinux(struct sbuf *b, const char *s, size_t n, size_t idx,
    const struct ctx *cx)
{
	struct value v;

	(void)idx;
	if (find_value(s, n, "default_kernel_opts", &v)) {
		rewrite_value(b, s, n, &v, &cx->c, 1);
	} else if (find_value(s, n, "serial_port", &v) && v.ve > v.vs &&
	    !serial_is_console(s + v.vs, v.ve - v.vs, &cx->c)) {
		sb_add(b, s, v.vs);
		sb_add(b, s + v.ve, n - v.ve);
	} else {
		sb_add(b, s, n);
	}
}

/*
 * Default grub, first pass: is there a console= already, and where does
 * an appended list go?
 */
static void
scan_default_grub(const char *in, size_t inlen, struct ctx *cx)
{
	struct value v;
	size_t pos = 0, idx = 0, n, eol;
	int any = 0, def = 0;

	while (pos < inlen) {
		edit_next_line(in, inlen, pos, &n, &eol);
		if (find_value(in + pos, n, "GRUB_CMDLINE_LINUX_DEFAULT", &v)) {
			def = 1;
			cx->append_line = idx;
		} else if (!find_value(in + pos, n, "GRUB_CMDLINE_LINUX", &v)) {
			v.vs = v.ve = 0;
		}
		any |= has_console(in + pos + v.vs, v.ve - v.vs);
		pos += eol;
		idx++;
	}
	cx->append = def && !any;
}

int
console_check(const char *c, struct pep_err *e)
{
	const char *s;

	if (c == NULL || c[0] == '\0')
		return pep_errf(e, PEP_EUSAGE, "empty console name");
	for (s = c; *s != '\0'; s++)
		if ((unsigned char)*s <= ' ' || *s == 0x7f ||
		    strchr("\"'`\\$;#", *s) != NULL)
			return pep_errf(e, PEP_EUSAGE, "console \"%s\": "
			    "blanks, quotes and shell characters are not "
			    "allowed", c);
	return 0;
}

static int
check_consoles(const char *const *consoles, size_t ncons, struct pep_err *e)
{
	size_t i;
	int rc;

	if (ncons == 0)
		return pep_errf(e, PEP_EUSAGE, "no console given");
	for (i = 0; i < ncons; i++) {
		rc = console_check(consoles[i], e);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static line_fn *
kind_fn(enum console_file kind)
{
	switch (kind) {
	case CONSOLE_GRUB_CFG:
		return line_grub_cfg_fn;
	case CONSOLE_DEFAULT_GRUB:
		return line_default_grub;
	case CONSOLE_EXTLINUX:
		return line_extlinux_fn;
	case CONSOLE_UPDATE_EXTLINUX:
		return line_update_extlinux;
	}
	return NULL;
}

int
console_rewrite(enum console_file kind, const char *in, size_t inlen,
    const char *const *consoles, size_t ncons, char **out, size_t *outlen,
    int *changed, struct pep_err *e)
{
	struct sbuf b = { NULL, 0, 0, 0 };
	struct ctx cx = { { consoles, ncons }, 0, 0 };
	line_fn *fn = kind_fn(kind);
	size_t pos = 0, idx = 0, n, eol;
	int r;

	*out = NULL;
	*outlen = 0;
	*changed = 0;
	if (fn == NULL)
		return pep_errf(e, PEP_EUSAGE, "unknown console file kind %d",
		    (int)kind);
	r = check_consoles(consoles, ncons, e);
	if (r < 0)
		return r;
	if (kind == CONSOLE_DEFAULT_GRUB)
		scan_default_grub(in, inlen, &cx);
	while (pos < inlen) {
		edit_next_line(in, inlen, pos, &n, &eol);
		fn(&b, in + pos, n, idx, &cx);
		sb_add(&b, in + pos + n, eol - n);
		pos += eol;
		idx++;
	}
	if (!b.oom && b.p == NULL) {
		b.p = malloc(1);
		if (b.p != NULL)
			b.p[0] = '\0';
	}
	if (b.oom || b.p == NULL) {
		free(b.p);
		return pep_errf(e, ENOMEM, "out of memory");
	}
	*out = b.p;
	*outlen = b.len;
	*changed = b.len != inlen || memcmp(b.p, in, inlen) != 0;
	return 0;
}
