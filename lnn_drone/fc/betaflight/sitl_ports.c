/* Port remapping for the Betaflight SITL (LD_PRELOAD), written for lnn_drone.
 *
 * Why: the 4.6 SITL hard-codes its ports (UDP 9001/9002 out, 9003/9004 in, TCP 5761.. for
 * UART1..), so two instances on one host would collide - and because it binds its UDP servers
 * with SO_REUSEADDR the collision is silent (the newest instance steals the packets). This shim
 * rewrites the port of every bind() and sendto() whose port appears in LNN_SITL_PORT_MAP
 * ("9002:41002,9003:41003,..."), so each instance gets its own ports without patching the
 * firmware. Nothing else is touched.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>

#define MAX_MAP 32

static int n_map = -1;
static unsigned short map_from[MAX_MAP], map_to[MAX_MAP];

static void load_map(void)
{
    if (n_map >= 0) {
        return;
    }
    n_map = 0;
    const char *s = getenv("LNN_SITL_PORT_MAP");
    while (s && *s && n_map < MAX_MAP) {
        char *end;
        long a = strtol(s, &end, 10);
        if (*end != ':') {
            break;
        }
        long b = strtol(end + 1, &end, 10);
        if (a > 0 && a < 65536 && b > 0 && b < 65536) {
            map_from[n_map] = (unsigned short)a;
            map_to[n_map] = (unsigned short)b;
            n_map++;
        }
        if (*end != ',') {
            break;
        }
        s = end + 1;
    }
}

/* Returns a remapped copy of addr in buf when its port is in the map, else addr itself. */
static const struct sockaddr *remap(const struct sockaddr *addr, socklen_t len, struct sockaddr_storage *buf)
{
    load_map();
    if (addr == NULL || len > sizeof(*buf)) {
        return addr;
    }
    in_port_t *port = NULL;
    memcpy(buf, addr, len);
    if (addr->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        port = &((struct sockaddr_in *)buf)->sin_port;
    } else if (addr->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
        port = &((struct sockaddr_in6 *)buf)->sin6_port;
    }
    if (port == NULL) {
        return addr;
    }
    for (int i = 0; i < n_map; i++) {
        if (ntohs(*port) == map_from[i]) {
            *port = htons(map_to[i]);
            return (const struct sockaddr *)buf;
        }
    }
    return addr;
}

int bind(int fd, const struct sockaddr *addr, socklen_t len)
{
    static int (*real_bind)(int, const struct sockaddr *, socklen_t);
    if (!real_bind) {
        real_bind = (int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "bind");
    }
    struct sockaddr_storage buf;
    return real_bind(fd, remap(addr, len, &buf), len);
}

ssize_t sendto(int fd, const void *data, size_t n, int flags, const struct sockaddr *addr, socklen_t len)
{
    static ssize_t (*real_sendto)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);
    if (!real_sendto) {
        real_sendto = (ssize_t (*)(int, const void *, size_t, int, const struct sockaddr *, socklen_t))
            dlsym(RTLD_NEXT, "sendto");
    }
    struct sockaddr_storage buf;
    return real_sendto(fd, data, n, flags, remap(addr, len, &buf), len);
}
