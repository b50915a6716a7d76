/*
 * LD_PRELOAD shim for Debian's i2pd 2.45.1 on a loopback-only test network.
 *
 * Why: i2pd 2.45.1 drops every incoming NTCP2 connection whose peer address is in a
 * reserved range, 127.0.0.0/8 included, whatever `reservedrange` says (fixed upstream in
 * 2.51). On a private network where every router lives on 127.0.0.x no two routers could
 * then ever talk. This shim changes only what getpeername() reports, and only for sockets
 * accepted on this router's own NTCP2 port (MISTGRID_NTCP2_PORT): a peer at 127.a.b.c is
 * reported as 127.a.b.c with the first octet swapped for MISTGRID_PEER_OCTET (a number the
 * harness picks outside every reserved range). No packet is ever sent to that address:
 * sockets stay connected to the real loopback peer; only i2pd's view of the peer changes.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>

typedef int (*getpeername_fn)(int, struct sockaddr *, socklen_t *);

int getpeername(int fd, struct sockaddr *addr, socklen_t *len)
{
    static getpeername_fn real = NULL;
    if (real == NULL)
        real = (getpeername_fn)dlsym(RTLD_NEXT, "getpeername");
    int result = real(fd, addr, len);
    if (result != 0 || addr == NULL || addr->sa_family != AF_INET)
        return result;
    const char *port_text = getenv("MISTGRID_NTCP2_PORT");
    const char *octet_text = getenv("MISTGRID_PEER_OCTET");
    if (port_text == NULL || octet_text == NULL)
        return result;
    struct sockaddr_in local;
    socklen_t local_len = sizeof(local);
    if (getsockname(fd, (struct sockaddr *)&local, &local_len) != 0 ||
        local.sin_family != AF_INET || ntohs(local.sin_port) != atoi(port_text))
        return result;
    struct sockaddr_in *peer = (struct sockaddr_in *)addr;
    unsigned long host = ntohl(peer->sin_addr.s_addr);
    if ((host >> 24) == 127)
        peer->sin_addr.s_addr = htonl((host & 0x00FFFFFFUL) |
                                      ((unsigned long)atoi(octet_text) << 24));
    return result;
}
