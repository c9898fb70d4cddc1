/* A plaintext echo backend for Benchmarks/compare.sh: one thread, epoll, non-blocking sockets, whatever arrives is
 * sent back. Small enough not to be the bottleneck of any row (a Python asyncio echo was, at 100 connections).
 * Build: cc -O2 -o echo-backend Benchmarks/echo-backend.c
 * Run:   ./echo-backend [PORT]   (0 or nothing: any free port) -- prints "PORT:<n>" once listening. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

enum { BUFFER = 65536, EVENTS = 256 };

struct connection {
    int fd;
    size_t start, end; /* bytes read and not yet written back: buffer[start..<end] */
    char buffer[BUFFER];
};

static void watch(int epoll, struct connection *c, int op, unsigned events) {
    struct epoll_event event = {.events = events, .data.ptr = c};
    epoll_ctl(epoll, op, c->fd, &event);
}

static void drop(int epoll, struct connection *c) {
    epoll_ctl(epoll, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c);
}

/* Writes what is pending; returns -1 when the peer is gone, else whether bytes are still pending. */
static int flush(struct connection *c) {
    while (c->start < c->end) {
        ssize_t n = send(c->fd, c->buffer + c->start, c->end - c->start, MSG_NOSIGNAL);
        if (n < 0) return (errno == EAGAIN || errno == EWOULDBLOCK) ? 1 : (errno == EINTR ? flush(c) : -1);
        c->start += (size_t)n;
    }
    c->start = c->end = 0;
    return 0;
}

int main(int argc, char **argv) {
    int port = argc > 1 ? atoi(argv[1]) : 0;
    int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(listener, (struct sockaddr *)&address, sizeof address) != 0 || listen(listener, 4096) != 0) {
        perror("echo-backend: cannot listen");
        return 1;
    }
    socklen_t length = sizeof address;
    getsockname(listener, (struct sockaddr *)&address, &length);
    printf("PORT:%d\n", ntohs(address.sin_port));
    fflush(stdout);

    int epoll = epoll_create1(0);
    struct epoll_event event = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(epoll, EPOLL_CTL_ADD, listener, &event);
    struct epoll_event events[EVENTS];
    for (;;) {
        int ready = epoll_wait(epoll, events, EVENTS, -1);
        if (ready < 0 && errno == EINTR) continue;
        for (int i = 0; i < ready; i++) {
            struct connection *c = events[i].data.ptr;
            if (c == NULL) { /* new connections */
                int fd;
                while ((fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct connection *fresh = malloc(sizeof *fresh);
                    if (fresh == NULL) { close(fd); continue; }
                    fresh->fd = fd;
                    fresh->start = fresh->end = 0;
                    watch(epoll, fresh, EPOLL_CTL_ADD, EPOLLIN);
                }
                continue;
            }
            if (events[i].events & (EPOLLERR | EPOLLHUP)) { drop(epoll, c); continue; }
            if (events[i].events & EPOLLOUT) { /* the peer read: send the rest, then read again */
                int pending = flush(c);
                if (pending < 0) { drop(epoll, c); continue; }
                if (pending == 0) watch(epoll, c, EPOLL_CTL_MOD, EPOLLIN);
                continue;
            }
            ssize_t n = recv(c->fd, c->buffer, BUFFER, 0);
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
                drop(epoll, c);
                continue;
            }
            if (n < 0) continue;
            c->start = 0;
            c->end = (size_t)n;
            int pending = flush(c);
            if (pending < 0) drop(epoll, c);
            else if (pending > 0) watch(epoll, c, EPOLL_CTL_MOD, EPOLLOUT); /* stop reading until it drains */
        }
    }
}
