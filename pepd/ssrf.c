/*
 * Address classification for the connect-time SSRF check. Anything that
 * is not plainly globally reachable unicast is blocked; embedded-IPv4
 * IPv6 forms are blocked as a class (smokescreen), except IPv4-mapped
 * addresses, which are unmapped and classified as IPv4. The host's own
 * addresses (ifaddr.c) are blocked too, public or not: smokescreen
 * refuses connections back to itself.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "pepd.h"

struct ssrf_range {
	uint8_t net[16];
	unsigned int prefix;
	enum ssrf_class cls;
};

/* IPv4, first match wins: 255.255.255.255 before 240/4. */
static const struct ssrf_range ssrf_v4[] = {
	{ { 0, 0, 0, 0 }, 8, SSRF_UNSPECIFIED },
	{ { 10, 0, 0, 0 }, 8, SSRF_PRIVATE },
	{ { 100, 64, 0, 0 }, 10, SSRF_CGNAT },
	{ { 127, 0, 0, 0 }, 8, SSRF_LOOPBACK },
	{ { 169, 254, 0, 0 }, 16, SSRF_LINKLOCAL },
	{ { 172, 16, 0, 0 }, 12, SSRF_PRIVATE },
	{ { 192, 0, 0, 0 }, 24, SSRF_RESERVED },	/* IETF protocol */
	{ { 192, 0, 2, 0 }, 24, SSRF_RESERVED },	/* TEST-NET-1 */
	{ { 192, 88, 99, 0 }, 24, SSRF_RESERVED },	/* 6to4 relay */
	{ { 192, 168, 0, 0 }, 16, SSRF_PRIVATE },
	{ { 198, 18, 0, 0 }, 15, SSRF_RESERVED },	/* benchmarking */
	{ { 198, 51, 100, 0 }, 24, SSRF_RESERVED },	/* TEST-NET-2 */
	{ { 203, 0, 113, 0 }, 24, SSRF_RESERVED },	/* TEST-NET-3 */
	{ { 224, 0, 0, 0 }, 4, SSRF_MULTICAST },
	{ { 255, 255, 255, 255 }, 32, SSRF_BROADCAST },
	{ { 240, 0, 0, 0 }, 4, SSRF_RESERVED },
};

/*
 * IPv6 (after ::ffff:0:0/96 has been unmapped), first match wins. What
 * falls outside 2000::/3 (the only global unicast allocation) and is not
 * listed is SSRF_RESERVED. Inside 2000::/3, the IANA IPv6 Special-Purpose
 * Address Registry's blocks that are not globally reachable are
 * reserved; 2001::/23 (IETF Protocol Assignments, RFC 2928) as a whole,
 * except the sub-blocks the registry marks globally reachable, which are
 * listed first.
 */
static const struct ssrf_range ssrf_v6[] = {
	/* ::, ::1, then the rest of ::/96 (IPv4-compatible) */
	{ { 0 }, 128, SSRF_UNSPECIFIED },
	{ { [15] = 1 }, 128, SSRF_LOOPBACK },
	{ { 0 }, 96, SSRF_IPV4_COMPAT },
	/* 64:ff9b::/96 (RFC 6052), 64:ff9b:1::/48 (RFC 8215) */
	{ { 0, 0x64, 0xff, 0x9b }, 96, SSRF_NAT64 },
	{ { 0, 0x64, 0xff, 0x9b, 0, 1 }, 48, SSRF_NAT64 },
	/* 2001::/23's globally reachable sub-blocks */
	/* 2001:1::1/128 Port Control Protocol anycast, RFC 7723 */
	{ { 0x20, 0x01, 0, 1, [15] = 1 }, 128, SSRF_PUBLIC },
	/* 2001:1::2/128 TURN anycast, RFC 8155 */
	{ { 0x20, 0x01, 0, 1, [15] = 2 }, 128, SSRF_PUBLIC },
	/* 2001:1::3/128 DNS-SD Service Registration Protocol anycast,
	 * RFC 9665 */
	{ { 0x20, 0x01, 0, 1, [15] = 3 }, 128, SSRF_PUBLIC },
	/* 2001:3::/32 AMT, RFC 7450 */
	{ { 0x20, 0x01, 0, 3 }, 32, SSRF_PUBLIC },
	/* 2001:4:112::/48 AS112-v6, RFC 7535 */
	{ { 0x20, 0x01, 0, 4, 0x01, 0x12 }, 48, SSRF_PUBLIC },
	/* 2001:20::/28 ORCHIDv2, RFC 7343 */
	{ { 0x20, 0x01, 0, 0x20 }, 28, SSRF_PUBLIC },
	/* 2001:30::/28 Drone Remote ID Entity Tags (DETs), RFC 9374 */
	{ { 0x20, 0x01, 0, 0x30 }, 28, SSRF_PUBLIC },
	/* 2001::/32 Teredo, RFC 4380 (an embedding: blocked as a class) */
	{ { 0x20, 0x01 }, 32, SSRF_TEREDO },
	/* the rest of 2001::/23, RFC 2928: among them 2001:2::/48
	 * benchmarking (RFC 5180) and 2001:10::/28 ORCHID (RFC 4843) */
	{ { 0x20, 0x01 }, 23, SSRF_RESERVED },
	/* 2001:db8::/32 documentation, RFC 3849 */
	{ { 0x20, 0x01, 0x0d, 0xb8 }, 32, SSRF_RESERVED },
	/* 2002::/16 6to4, RFC 3056 */
	{ { 0x20, 0x02 }, 16, SSRF_6TO4 },
	/* 3fff::/20 documentation, RFC 9637 */
	{ { 0x3f, 0xff }, 20, SSRF_RESERVED },
	{ { 0x20 }, 3, SSRF_PUBLIC },		/* global unicast */
	{ { 0xfc }, 7, SSRF_PRIVATE },		/* unique local, RFC 4193 */
	{ { 0xfe, 0x80 }, 10, SSRF_LINKLOCAL },
	{ { 0xfe, 0xc0 }, 10, SSRF_PRIVATE },	/* site-local, RFC 3879 */
	{ { 0xff }, 8, SSRF_MULTICAST },
};

static const char *const ssrf_names[] = {
	[SSRF_PUBLIC] = "public",
	[SSRF_UNSPECIFIED] = "unspecified",
	[SSRF_LOOPBACK] = "loopback",
	[SSRF_PRIVATE] = "private",
	[SSRF_LINKLOCAL] = "link-local",
	[SSRF_CGNAT] = "cgnat",
	[SSRF_MULTICAST] = "multicast",
	[SSRF_BROADCAST] = "broadcast",
	[SSRF_RESERVED] = "reserved",
	[SSRF_NAT64] = "nat64",
	[SSRF_6TO4] = "6to4",
	[SSRF_TEREDO] = "teredo",
	[SSRF_IPV4_COMPAT] = "ipv4-compatible",
	[SSRF_OWN_ADDRESS] = "own-address",
	[SSRF_BAD_ADDRESS] = "bad-address",
};

const char *
ssrf_class_name(enum ssrf_class c)
{
	if ((unsigned int)c >= sizeof(ssrf_names) / sizeof(ssrf_names[0]))
		return "bad-address";
	return ssrf_names[c];
}

/* Do the first prefix bits of a and b agree? */
static int
prefix_eq(const uint8_t *a, const uint8_t *b, unsigned int prefix)
{
	unsigned int whole = prefix / 8, rest = prefix % 8;
	uint8_t mask;

	if (memcmp(a, b, whole) != 0)
		return 0;
	if (rest == 0)
		return 1;
	mask = (uint8_t)(0xff << (8 - rest));
	return (a[whole] & mask) == (b[whole] & mask);
}

static enum ssrf_class
range_lookup(const struct ssrf_range *t, size_t n, const uint8_t *a,
    enum ssrf_class dflt)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (prefix_eq(a, t[i].net, t[i].prefix))
			return t[i].cls;
	return dflt;
}

static const uint8_t v4mapped[12] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff
};

/*
 * Extract the address of sa into a[16]; IPv4 (and IPv4-mapped IPv6) in
 * a[0..3]. Returns AF_INET, AF_INET6 or -1.
 */
static int
sa_addr(const struct sockaddr *sa, socklen_t len, uint8_t a[16])
{
	const struct sockaddr_in *s4;
	const struct sockaddr_in6 *s6;

	memset(a, 0, 16);
	if (sa == NULL || len < (socklen_t)sizeof(sa_family_t))
		return -1;
	if (sa->sa_family == AF_INET &&
	    len >= (socklen_t)sizeof(struct sockaddr_in)) {
		s4 = (const struct sockaddr_in *)(const void *)sa;
		memcpy(a, &s4->sin_addr, 4);
		return AF_INET;
	}
	if (sa->sa_family == AF_INET6 &&
	    len >= (socklen_t)sizeof(struct sockaddr_in6)) {
		s6 = (const struct sockaddr_in6 *)(const void *)sa;
		if (memcmp(s6->sin6_addr.s6_addr, v4mapped, 12) == 0) {
			memcpy(a, s6->sin6_addr.s6_addr + 12, 4);
			return AF_INET;
		}
		memcpy(a, s6->sin6_addr.s6_addr, 16);
		return AF_INET6;
	}
	return -1;
}

enum ssrf_class
ssrf_classify(const struct sockaddr *sa, socklen_t len)
{
	uint8_t a[16];
	int fam;

	fam = sa_addr(sa, len, a);
	if (fam == AF_INET)
		return range_lookup(ssrf_v4, sizeof(ssrf_v4) /
		    sizeof(ssrf_v4[0]), a, SSRF_PUBLIC);
	if (fam == AF_INET6)
		return range_lookup(ssrf_v6, sizeof(ssrf_v6) /
		    sizeof(ssrf_v6[0]), a, SSRF_RESERVED);
	return SSRF_BAD_ADDRESS;
}

/* Strict decimal prefix length in [0, max]. */
static int
parse_prefix(const char *s, unsigned int max, unsigned int *out)
{
	unsigned int v = 0;
	size_t i;

	if (s[0] == '\0' || strlen(s) > 3)
		return -EINVAL;
	for (i = 0; s[i] != '\0'; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (unsigned int)(s[i] - '0');
	}
	if (v > max || (i > 1 && s[0] == '0'))
		return -EINVAL;
	*out = v;
	return 0;
}

static void
cidr_mask(struct cidr *c)
{
	unsigned int i, bits = c->family == AF_INET ? 32 : 128;

	for (i = c->prefix; i < bits; i++)
		c->addr[i / 8] &= (uint8_t)~(0x80 >> (i % 8));
}

int
cidr_parse(const char *s, struct cidr *c)
{
	char buf[INET6_ADDRSTRLEN + 8];
	char *slash;
	size_t n = strlen(s);
	int r;

	memset(c, 0, sizeof(*c));
	if (n == 0 || n >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, s, n + 1);
	slash = strchr(buf, '/');
	if (slash != NULL)
		*slash++ = '\0';
	if (inet_pton(AF_INET, buf, c->addr) == 1) {
		c->family = AF_INET;
		c->prefix = 32;
	} else if (inet_pton(AF_INET6, buf, c->addr) == 1) {
		c->family = AF_INET6;
		c->prefix = 128;
	} else {
		return -EINVAL;
	}
	if (slash != NULL) {
		r = parse_prefix(slash, c->prefix, &c->prefix);
		if (r < 0)
			return r;
	}
	if (c->family == AF_INET6 && c->prefix >= 96 &&
	    memcmp(c->addr, v4mapped, 12) == 0) {
		/* ::ffff:a.b.c.d/N: addresses are unmapped before matching */
		memmove(c->addr, c->addr + 12, 4);
		memset(c->addr + 4, 0, 12);
		c->family = AF_INET;
		c->prefix -= 96;
	}
	cidr_mask(c);
	return 0;
}

int
cidr_contains(const struct cidr *c, const struct sockaddr *sa,
    socklen_t len)
{
	uint8_t a[16];
	int fam;

	fam = sa_addr(sa, len, a);
	if (fam < 0 || fam != c->family)
		return 0;
	return prefix_eq(a, c->addr, c->prefix);
}

int
cidr_from_sockaddr(const struct sockaddr *sa, socklen_t len, struct cidr *c)
{
	int fam;

	memset(c, 0, sizeof(*c));
	fam = sa_addr(sa, len, c->addr);
	if (fam < 0)
		return -EINVAL;
	c->family = fam;
	c->prefix = fam == AF_INET ? 32 : 128;
	return 0;
}

/* Is sa one of the host's own addresses? */
static int
is_own(const struct sockaddr *sa, socklen_t len, const struct cidr *own,
    size_t nown)
{
	size_t i;

	for (i = 0; i < nown; i++)
		if (cidr_contains(&own[i], sa, len))
			return 1;
	return 0;
}

enum ssrf_class
ssrf_check(const struct sockaddr *sa, socklen_t len,
    const struct cidr *allow, size_t nallow, const struct cidr *own,
    size_t nown)
{
	enum ssrf_class cls;
	size_t i;

	cls = ssrf_classify(sa, len);
	if (cls == SSRF_BAD_ADDRESS)
		return cls;
	if (cls == SSRF_PUBLIC && is_own(sa, len, own, nown))
		cls = SSRF_OWN_ADDRESS;
	if (cls == SSRF_PUBLIC)
		return cls;
	for (i = 0; i < nallow; i++)
		if (cidr_contains(&allow[i], sa, len))
			return SSRF_PUBLIC;
	return cls;
}
