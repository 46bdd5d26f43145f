/*
 * pexi-bridge: the guest half of the pep proxy path. Accepts stream
 * connections (TCP 127.0.0.1:4040 by default) and joins each one to a new
 * upstream connection (AF_VSOCK CID 2 port 5000 by default), copying bytes
 * both ways from one epoll loop. libc only, so it links statically.
 */
#ifndef PEXI_BRIDGE_H
#define PEXI_BRIDGE_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

#define PB_VERSION "0.1.0"

/*
 * struct sockaddr_vm as the kernel defines it (linux/vm_sockets.h), kept
 * here because musl ships no linux/ headers. The layout is kernel ABI.
 */
struct pb_sockaddr_vm {
	sa_family_t svm_family;
	unsigned short svm_reserved1;
	unsigned int svm_port;
	unsigned int svm_cid;
	unsigned char svm_flags;
	unsigned char svm_zero[3];
};

#define PB_VMADDR_CID_ANY 0xffffffffU

union pb_sockaddr {
	struct sockaddr sa;
	struct sockaddr_in in;
	struct sockaddr_in6 in6;
	struct sockaddr_un un;
	struct pb_sockaddr_vm vm;
};

/* A parsed "tcp:HOST:PORT", "unix:PATH" or "vsock:CID:PORT". */
struct pb_addr {
	union pb_sockaddr u;
	socklen_t len;
	char text[128];		/* canonical form, for messages */
};

/* bridge_addr.c */
int addr_parse(const char *s, struct pb_addr *a);
int addr_listen(struct pb_addr *a);
int addr_connect(const struct pb_addr *a, int *fdp);
void addr_unlink(const struct pb_addr *a);
void addr_peer_text(int fd, char *buf, size_t len);

/* bridge_relay.c */
struct pb_relay;

struct pb_relay_opts {
	const struct pb_addr *upstream;
	size_t bufsize;		/* per direction, per connection */
	unsigned maxconns;
};

int relay_new(struct pb_relay **rp, int listenfd, int sigfd,
    const struct pb_relay_opts *o);
int relay_run(struct pb_relay *r);
void relay_free(struct pb_relay *r);

#endif
