/*
 * ssrf.c: every address of tests/data/pepd/ssrf.tsv classifies as its
 * line says, both as a plain sockaddr and (IPv4) as an IPv4-mapped
 * sockaddr_in6; ssrf_allow.tsv checks allow_private overrides and
 * cidr.tsv the CIDR parser.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../pepd/pepd.h"
#include "../tapdata.h"

#define MAXF 4	/* fields per data line */
/* Text to sockaddr; 0 or -1. */
static int
to_sa(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, s, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		*len = sizeof(*s4);
		return 0;
	}
	if (inet_pton(AF_INET6, s, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		*len = sizeof(*s6);
		return 0;
	}
	return -1;
}

static void
classify_file(const char *dir)
{
	struct sockaddr_storage ss;
	struct sockaddr_in6 m;
	char line[512], *f[MAXF];
	const char *got;
	socklen_t len;
	FILE *fp;

	fp = tap_open_data(dir, "pepd", "ssrf.tsv");
	if (fp == NULL)
		return;
	while (tap_line(line, sizeof(line), fp) != NULL) {
		if (tap_split(line, f, MAXF) != 2 ||
		    to_sa(f[0], &ss, &len) < 0) {
			tap_ok(0, "bad data line '%s'", f[0]);
			continue;
		}
		got = ssrf_class_name(ssrf_classify((struct sockaddr *)&ss,
		    len));
		tap_ok(strcmp(got, f[1]) == 0, "%s is %s (got %s)", f[0], f[1],
		    got);
		if (ss.ss_family != AF_INET)
			continue;
		memset(&m, 0, sizeof(m));
		m.sin6_family = AF_INET6;
		m.sin6_addr.s6_addr[10] = 0xff;
		m.sin6_addr.s6_addr[11] = 0xff;
		memcpy(&m.sin6_addr.s6_addr[12],
		    &((struct sockaddr_in *)&ss)->sin_addr, 4);
		got = ssrf_class_name(ssrf_classify((struct sockaddr *)&m,
		    sizeof(m)));
		tap_ok(strcmp(got, f[1]) == 0, "::ffff:%s is %s (got %s)",
		    f[0], f[1], got);
	}
	fclose(fp);
}

static size_t
parse_allow(char *list, struct cidr *c, size_t max)
{
	char *tok, *save = NULL;
	size_t n = 0;

	if (strcmp(list, "-") == 0)
		return 0;
	for (tok = strtok_r(list, ",", &save); tok != NULL && n < max;
	    tok = strtok_r(NULL, ",", &save))
		if (cidr_parse(tok, &c[n]) == 0)
			n++;
		else
			tap_ok(0, "allow CIDR %s parses", tok);
	return n;
}

static void
allow_file(const char *dir)
{
	struct sockaddr_storage ss;
	struct cidr allow[16];
	char line[512], *f[MAXF];
	struct cidr own[16];
	const char *got;
	socklen_t len;
	size_t n, nown;
	int k;
	FILE *fp;

	fp = tap_open_data(dir, "pepd", "ssrf_allow.tsv");
	if (fp == NULL)
		return;
	while (tap_line(line, sizeof(line), fp) != NULL) {
		k = tap_split(line, f, MAXF);
		if ((k != 3 && k != 4) || to_sa(f[1], &ss, &len) < 0) {
			tap_ok(0, "bad data line '%s'", f[0]);
			continue;
		}
		n = strcmp(f[0], "-") == 0 ? 0 : parse_allow(f[0], allow, 16);
		nown = k == 4 ? parse_allow(f[3], own, 16) : 0;
		got = ssrf_class_name(ssrf_check((struct sockaddr *)&ss, len,
		    allow, n, own, nown));
		tap_ok(strcmp(got, f[2]) == 0,
		    "allow %s%s%s: %s is %s (got %s)", f[0],
		    k == 4 ? ", own " : "", k == 4 ? f[3] : "", f[1], f[2],
		    got);
	}
	fclose(fp);
}

static void
cidr_file(const char *dir)
{
	char line[512], *f[MAXF];
	struct cidr c;
	int r;
	FILE *fp;

	fp = tap_open_data(dir, "pepd", "cidr.tsv");
	if (fp == NULL)
		return;
	while (tap_line(line, sizeof(line), fp) != NULL) {
		if (tap_split(line, f, MAXF) != 2) {
			tap_ok(0, "bad data line '%s'", f[0]);
			continue;
		}
		r = cidr_parse(f[0], &c);
		tap_ok((r == 0) == (strcmp(f[1], "ok") == 0),
		    "cidr_parse('%s') %s", f[0], f[1]);
	}
	fclose(fp);
}

static void
odd_inputs(void)
{
	struct sockaddr_in s4;
	struct sockaddr_un_like {
		sa_family_t fam;
		char path[32];
	} su;
	struct cidr c;

	memset(&s4, 0, sizeof(s4));
	s4.sin_family = AF_INET;
	tap_ok(ssrf_classify((struct sockaddr *)&s4, 4) == SSRF_BAD_ADDRESS,
	    "short sockaddr_in is a bad address");
	tap_ok(ssrf_classify(NULL, 0) == SSRF_BAD_ADDRESS, "NULL is bad");
	memset(&su, 0, sizeof(su));
	su.fam = AF_UNIX;
	tap_ok(ssrf_classify((struct sockaddr *)&su, sizeof(su)) ==
	    SSRF_BAD_ADDRESS, "AF_UNIX is a bad address");
	tap_ok(ssrf_check((struct sockaddr *)&su, sizeof(su), NULL, 0, NULL,
	    0) == SSRF_BAD_ADDRESS, "AF_UNIX never passes the check");
	cidr_parse("0.0.0.0/0", &c);
	tap_ok(ssrf_check((struct sockaddr *)&su, sizeof(su), &c, 1, &c, 1) ==
	    SSRF_BAD_ADDRESS, "an allow-all list does not pass AF_UNIX");
	tap_ok(strcmp(ssrf_class_name((enum ssrf_class)99), "bad-address") ==
	    0, "unknown class name");
	cidr_parse("10.1.2.3/8", &c);
	tap_ok(c.addr[1] == 0 && c.addr[3] == 0 && c.prefix == 8,
	    "host bits are masked");
}

int
main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "tests/data";

	classify_file(dir);
	allow_file(dir);
	cidr_file(dir);
	odd_inputs();
	return tap_done();
}
