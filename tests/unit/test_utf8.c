/*
 * common/utf8.c: validity as RFC 3629 defines it (no overlongs, no
 * surrogates, nothing past U+10FFFF, no truncated sequences), and the
 * sanitizer's U+FFFD for each byte that does not start a valid sequence.
 */
#include <stdlib.h>
#include <string.h>

#include "../../common/utf8.h"
#include "../tap.h"

#define R "\xef\xbf\xbd"	/* U+FFFD */

static const struct {
	const char *in;
	int valid;
	const char *clean;
} cases[] = {
	{ "", 1, "" },
	{ "plain ascii.raw", 1, "plain ascii.raw" },
	{ "caf\xc3\xa9", 1, "caf\xc3\xa9" },			/* U+00E9 */
	{ "\xe2\x82\xac", 1, "\xe2\x82\xac" },			/* U+20AC */
	{ "\xf0\x9f\x98\x80", 1, "\xf0\x9f\x98\x80" },		/* U+1F600 */
	{ "\xf4\x8f\xbf\xbf", 1, "\xf4\x8f\xbf\xbf" },		/* U+10FFFF */
	{ "\xed\x9f\xbf", 1, "\xed\x9f\xbf" },			/* U+D7FF */
	{ "\xee\x80\x80", 1, "\xee\x80\x80" },			/* U+E000 */
	{ "\xff", 0, R },
	{ "a\xfe" "b", 0, "a" R "b" },
	{ "\xc0\x80", 0, R R },					/* overlong NUL */
	{ "\xc1\xbf", 0, R R },					/* overlong */
	{ "\xe0\x9f\xbf", 0, R R R },				/* overlong */
	{ "\xf0\x8f\xbf\xbf", 0, R R R R },			/* overlong */
	{ "\xed\xa0\x80", 0, R R R },				/* U+D800 */
	{ "\xed\xbf\xbf", 0, R R R },				/* U+DFFF */
	{ "\xf4\x90\x80\x80", 0, R R R R },			/* > U+10FFFF */
	{ "\xf5\x80\x80\x80", 0, R R R R },
	{ "\xe2\x82", 0, R R },					/* truncated */
	{ "\xc3", 0, R },
	{ "\x80", 0, R },					/* lone cont. */
	{ "in-\xff\xfe-\xc3(.raw", 0, "in-" R R "-" R "(.raw" },
};

int
main(void)
{
	size_t i;
	char *c;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		tap_ok(utf8_valid(cases[i].in, strlen(cases[i].in)) ==
		    cases[i].valid, "case %zu: valid is %d", i,
		    cases[i].valid);
		c = utf8_sanitize(cases[i].in);
		tap_ok(c != NULL && strcmp(c, cases[i].clean) == 0,
		    "case %zu: sanitized as expected", i);
		tap_ok(c != NULL && utf8_valid(c, strlen(c)),
		    "case %zu: sanitized text is valid", i);
		free(c);
	}
	return tap_done();
}
