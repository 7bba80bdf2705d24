/* Calls Python does not reach, under LD_PRELOAD on ustack, against the
 * kernel peers of peer.py (TCP echo on 7001, UDP echo on 7003): sendmmsg
 * and recvmmsg, dup3, ppoll, pselect, epoll_pwait, F_DUPFD_CLOEXEC,
 * FIONBIO, struct tcp_info read with the C library's own definition,
 * sendfile with an offset. Prints "ok NAME" per check; exits 1 on failure. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#define CHECK(c) do { if (!(c)) { fprintf(stderr, "line %d: %s failed (errno %d)\n", __LINE__, #c, errno); exit(1); } } while (0)

static struct sockaddr_in addr(const char *ip, int port) {
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    inet_pton(AF_INET, ip, &a.sin_addr);
    return a;
}

static int tcp_connect(const char *ip, int port) {
    for (int i = 0; i < 100; i++) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        CHECK(s >= 0);
        struct sockaddr_in a = addr(ip, port);
        if (connect(s, (struct sockaddr *)&a, sizeof a) == 0) return s;
        close(s);
        usleep(100000);
    }
    CHECK(!"connect");
    return -1;
}

static void read_exact(int fd, char *buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        CHECK(r > 0);
        got += r;
    }
}

int main(int argc, char **argv) {
    const char *kip = argv[1];
    /* Connecting (with retries) also waits for the peers to be up. */
    int s = tcp_connect(kip, 7001);

    /* UDP: sendmmsg, then recvmmsg with MSG_WAITFORONE. */
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    CHECK(u >= 0);
    struct sockaddr_in peer = addr(kip, 7003);
    CHECK(connect(u, (struct sockaddr *)&peer, sizeof peer) == 0);
    char m0[] = "one", m1[] = "two", m2[] = "three";
    struct iovec iov[3] = {{m0, 3}, {m1, 3}, {m2, 5}};
    struct mmsghdr out[3];
    memset(out, 0, sizeof out);
    for (int i = 0; i < 3; i++) { out[i].msg_hdr.msg_iov = &iov[i]; out[i].msg_hdr.msg_iovlen = 1; }
    CHECK(sendmmsg(u, out, 3, 0) == 3);
    CHECK(out[2].msg_len == 5);
    char b[3][16];
    struct iovec riov[3] = {{b[0], 16}, {b[1], 16}, {b[2], 16}};
    struct mmsghdr in[3];
    memset(in, 0, sizeof in);
    for (int i = 0; i < 3; i++) { in[i].msg_hdr.msg_iov = &riov[i]; in[i].msg_hdr.msg_iovlen = 1; }
    int got = 0;
    for (int tries = 0; got < 3 && tries < 100; tries++) {
        struct pollfd p = {u, POLLIN, 0};
        CHECK(poll(&p, 1, 5000) == 1);
        int n = recvmmsg(u, in + got, 3 - got, MSG_WAITFORONE, NULL);
        CHECK(n > 0);
        got += n;
    }
    CHECK(got == 3);
    CHECK(in[0].msg_len == 3 && memcmp(b[0], "one", 3) == 0);
    CHECK(in[2].msg_len == 5 && memcmp(b[2], "three", 5) == 0);
    printf("ok sendmmsg/recvmmsg\n");

    /* TCP: dup3, F_DUPFD_CLOEXEC, FIONBIO, ppoll, pselect, epoll_pwait. */
    int d = dup3(s, 60, O_CLOEXEC);
    CHECK(d == 60 && (fcntl(d, F_GETFD) & FD_CLOEXEC));
    int d2 = fcntl(s, F_DUPFD_CLOEXEC, 70);
    CHECK(d2 >= 70 && (fcntl(d2, F_GETFD) & FD_CLOEXEC));
    int on = 1;
    CHECK(ioctl(d, FIONBIO, &on) == 0);
    CHECK(fcntl(s, F_GETFL) & O_NONBLOCK);
    char c;
    CHECK(recv(s, &c, 1, 0) == -1 && errno == EAGAIN);
    int off = 0;
    CHECK(ioctl(s, FIONBIO, &off) == 0);
    CHECK(write(d2, "ping", 4) == 4);
    struct pollfd p = {s, POLLIN, 0};
    struct timespec ts = {5, 0};
    CHECK(ppoll(&p, 1, &ts, NULL) == 1 && (p.revents & POLLIN));
    fd_set rs;
    FD_ZERO(&rs);
    FD_SET(s, &rs);
    CHECK(pselect(s + 1, &rs, NULL, NULL, &ts, NULL) == 1 && FD_ISSET(s, &rs));
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = d};
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, d, &ev) == 0);
    struct epoll_event evs[4];
    CHECK(epoll_pwait(ep, evs, 4, 5000, NULL) == 1 && evs[0].data.fd == d);
    char buf[8];
    read_exact(s, buf, 4);
    CHECK(memcmp(buf, "ping", 4) == 0);
    CHECK(epoll_pwait(ep, evs, 4, 200, NULL) == 0);
    close(d);
    close(d2);
    printf("ok dup3, F_DUPFD_CLOEXEC, FIONBIO, ppoll, pselect, epoll_pwait\n");

    /* struct tcp_info as the C library defines it. */
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    CHECK(getsockopt(s, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0);
    CHECK(len == sizeof ti);
    CHECK(ti.tcpi_state == 1 /* TCP_ESTABLISHED */);
    CHECK(ti.tcpi_snd_mss >= 500 && ti.tcpi_snd_mss <= 1460);
    CHECK(ti.tcpi_rtt > 0 && ti.tcpi_rtt < 1000000);
    CHECK(ti.tcpi_snd_cwnd >= 2);
    int bufsz = 0;
    len = sizeof bufsz;
    CHECK(getsockopt(s, SOL_SOCKET, SO_SNDBUF, &bufsz, &len) == 0 && bufsz > 0);
    printf("ok tcp_info (state %u, mss %u, rtt %u us, cwnd %u), SO_SNDBUF %d\n",
           ti.tcpi_state, ti.tcpi_snd_mss, ti.tcpi_rtt, ti.tcpi_snd_cwnd, bufsz);

    /* sendfile from an offset leaves the file position alone. */
    char path[] = "/tmp/ustack-calls-XXXXXX";
    int f = mkstemp(path);
    CHECK(f >= 0);
    unlink(path);
    CHECK(write(f, "0123456789", 10) == 10);
    CHECK(lseek(f, 2, SEEK_SET) == 2);
    off_t o = 4;
    CHECK(sendfile(s, f, &o, 5) == 5 && o == 9);
    CHECK(lseek(f, 0, SEEK_CUR) == 2);
    read_exact(s, buf, 5);
    CHECK(memcmp(buf, "45678", 5) == 0);
    CHECK(sendfile(s, f, NULL, 3) == 3 && lseek(f, 0, SEEK_CUR) == 5);
    read_exact(s, buf, 3);
    CHECK(memcmp(buf, "234", 3) == 0);
    printf("ok sendfile\n");
    close(s);
    printf("all ok\n");
    return 0;
}
