/*
 * url.c: every line of tests/data/pepd/url.tsv through url_parse and of
 * host.tsv through host_normalize; the URL string and the match form.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../pepd/pepd.h"
#include "../tapdata.h"

#define MAXF 8	/* fields per data line */
static void
url_line(char **f, int n)
{
	struct pep_url u;
	struct pep_err e = { 0, "" };
	int r;

	r = url_parse(f[0], &u, &e);
	if (n == 2 && strcmp(f[1], "bad") == 0) {
		tap_ok(r < 0 && e.msg[0] != '\0', "'%s' refused (%s)", f[0],
		    e.msg);
		if (r == 0)
			url_free(&u);
		return;
	}
	if (n != 6) {
		tap_ok(0, "bad data line '%s'", f[0]);
		return;
	}
	if (!tap_ok(r == 0, "'%s' parses (%s)", f[0], r < 0 ? e.msg : ""))
		return;
	tap_ok(strcmp(u.scheme, f[1]) == 0 && strcmp(u.host, f[2]) == 0 &&
	    u.port == (int)strtol(f[3], NULL, 10) &&
	    u.host_is_ip == (int)strtol(f[4], NULL, 10) &&
	    strcmp(u.path, f[5]) == 0,
	    "'%s' -> %s %s %s %s %s (got %s %s %d %d %s)", f[0], f[1], f[2],
	    f[3], f[4], f[5], u.scheme, u.host, u.port, u.host_is_ip,
	    u.path);
	url_free(&u);
}

static void
url_file(const char *dir)
{
	char line[1024], *f[MAXF];
	FILE *fp;

	fp = tap_open_data(dir, "pepd", "url.tsv");
	if (fp == NULL)
		return;
	while (tap_line(line, sizeof(line), fp) != NULL) {
		url_line(f, tap_split(line, f, MAXF));
	}
	fclose(fp);
}

static void
host_file(const char *dir)
{
	char line[1024], out[URL_HOSTMAX], *f[MAXF];
	FILE *fp;
	int r;

	fp = tap_open_data(dir, "pepd", "host.tsv");
	if (fp == NULL)
		return;
	while (tap_line(line, sizeof(line), fp) != NULL) {
		if (tap_split(line, f, MAXF) != 2) {
			tap_ok(0, "bad data line '%s'", f[0]);
			continue;
		}
		r = host_normalize(f[0], out, sizeof(out));
		if (strcmp(f[1], "!bad") == 0)
			tap_ok(r < 0, "host '%s' refused", f[0]);
		else
			tap_ok(r == 0 && strcmp(out, f[1]) == 0,
			    "host '%s' -> '%s' (got '%s')", f[0], f[1],
			    r == 0 ? out : "error");
	}
	fclose(fp);
}

static void
edges(void)
{
	char out[8], big[600];
	struct pep_url u;

	tap_ok(host_normalize("example.com", out, sizeof(out)) < 0,
	    "host_normalize refuses a short output buffer");
	tap_ok(host_normalize("a.b", out, 0) < 0, "outlen 0 is refused");
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	tap_ok(url_parse(big, &u, NULL) < 0, "NULL pep_err is allowed");
	url_free(NULL);	/* a crash here fails the case */
	memset(&u, 0, sizeof(u));
	url_free(&u);
	tap_ok(u.path == NULL && u.match == NULL && u.url == NULL,
	    "url_free accepts NULL and an empty url");
	tap_ok(url_parse("http://a.test/p?q", &u, NULL) == 0 && u.url != NULL,
	    "a parsed url owns its strings");
	url_free(&u);
	tap_ok(u.path == NULL && u.match == NULL && u.url == NULL,
	    "url_free leaves no dangling pointers (a second free is safe)");
	url_free(&u);
}

/* The URL string (audit, OPA, fetch) and the form rules match. */
static void
forms(void)
{
	static const char *const t[][3] = {
		{ "HTTP://EX.com:80//a//b/?c//d", "http://ex.com//a//b/?c//d",
		    "/a/b/?c//d" },
		{ "https://ex.com:8443/x", "https://ex.com:8443/x", "/x" },
		{ "http://[::1]/caf\xc3\xa9", "http://[::1]/caf%C3%A9",
		    "/caf%C3%A9" },
		{ "http://ex.com", "http://ex.com/", "/" },
	};
	struct pep_url u;
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		if (!tap_ok(url_parse(t[i][0], &u, NULL) == 0, "'%s' parses",
		    t[i][0]))
			continue;
		tap_ok(strcmp(u.url, t[i][1]) == 0 &&
		    strcmp(u.match, t[i][2]) == 0, "'%s': url %s, match %s "
		    "(got %s, %s)", t[i][0], t[i][1], t[i][2], u.url, u.match);
		url_free(&u);
	}
}

int
main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "tests/data";

	url_file(dir);
	host_file(dir);
	forms();
	edges();
	return tap_done();
}
