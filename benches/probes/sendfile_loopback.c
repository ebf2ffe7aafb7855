/*
 * Probe for issue 18: does sending blocks with sendfile(2) instead of pread + writev cut
 * the CPU of a transfer between two processes on one machine (the benchmark's setting)?
 *
 * A server process serves FILE over loopback TCP to a child that reads it in 256 KiB
 * recv()s (unchoke's largest read), as 16 KiB blocks each behind a 13-byte header (a
 * BitTorrent `piece` message), 256 KiB pieces:
 *   mode 0  pread the piece into one reused buffer, writev header+block pairs (what the
 *           drivers do today);
 *   mode 1  per block: send(header, MSG_MORE) then sendfile(block);
 *   mode 2  mode 1 inside TCP_CORK per piece.
 * It prints MB/s and CPU seconds per GiB of each side (getrusage, user+sys).
 *
 *   gcc -O2 -o /tmp/sendfile_loopback benches/probes/sendfile_loopback.c
 *   cat FILE >/dev/null        # the data in the page cache, as a warm seed's
 *   for i in 1 2 3 4 5; do for m in 0 1 2; do sync; /tmp/sendfile_loopback $m FILE; done; done
 *
 * Result on the benchmark VM (benches/RESULTS.md, "sendfile"): the server's CPU falls,
 * the reader's rises by more (it copies from cold page-cache pages instead of a buffer the
 * sender has just written), so the pair spends no less CPU per GiB.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BLOCK 16384
#define PIECE (256 * 1024)
#define BLOCKS (PIECE / BLOCK)
#define PORT 40123

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static double cpu_seconds(int who) {
    struct rusage u;
    getrusage(who, &u);
    return u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6 + u.ru_stime.tv_sec +
           u.ru_stime.tv_usec / 1e6;
}

static void die(const char *what) {
    perror(what);
    exit(1);
}

static void send_all(int fd, const char *b, size_t n, int flags) {
    while (n) {
        ssize_t r = send(fd, b, n, flags);
        if (r < 0) die("send");
        b += r;
        n -= (size_t)r;
    }
}

static void writev_all(int fd, struct iovec *v, int n) {
    while (n) {
        ssize_t r = writev(fd, v, n);
        if (r < 0) die("writev");
        while (r > 0) {
            if ((size_t)r >= v->iov_len) {
                r -= (ssize_t)v->iov_len;
                v++;
                n--;
            } else {
                v->iov_base = (char *)v->iov_base + r;
                v->iov_len -= (size_t)r;
                r = 0;
            }
        }
        while (n && v->iov_len == 0) {
            v++;
            n--;
        }
    }
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s MODE(0|1|2) FILE\n", argv[0]);
        return 2;
    }
    int mode = atoi(argv[1]);
    int one = 1;
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(PORT);
    addr.sin_addr.s_addr = htonl(0x7f000001);
    if (bind(ls, (void *)&addr, sizeof addr)) die("bind");
    if (listen(ls, 1)) die("listen");
    int report[2];
    if (pipe(report)) die("pipe");
    pid_t child = fork();
    if (child == 0) {
        int c = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(c, (void *)&addr, sizeof addr)) die("connect");
        char *buf = malloc(PIECE);
        ssize_t r;
        while ((r = recv(c, buf, PIECE, 0)) > 0) {
        }
        double cpu = cpu_seconds(RUSAGE_SELF);
        if (write(report[1], &cpu, sizeof cpu) != sizeof cpu) die("report");
        return 0;
    }
    int s = accept(ls, 0, 0);
    if (s < 0) die("accept");
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int f = open(argv[2], O_RDONLY);
    if (f < 0) die("open");
    off_t size = lseek(f, 0, SEEK_END);
    char *piece = malloc(PIECE);
    char header[BLOCKS][13];
    memset(header, 7, sizeof header);
    double t0 = seconds();
    for (off_t at = 0; at + PIECE <= size; at += PIECE) {
        if (mode == 0) {
            if (pread(f, piece, PIECE, at) != PIECE) die("pread");
            struct iovec v[2 * BLOCKS];
            for (int b = 0; b < BLOCKS; b++) {
                v[2 * b] = (struct iovec){header[b], 13};
                v[2 * b + 1] = (struct iovec){piece + b * BLOCK, BLOCK};
            }
            writev_all(s, v, 2 * BLOCKS);
            continue;
        }
        if (mode == 2) setsockopt(s, IPPROTO_TCP, TCP_CORK, &one, sizeof one);
        for (int b = 0; b < BLOCKS; b++) {
            send_all(s, header[b], 13, MSG_MORE);
            off_t o = at + b * BLOCK;
            size_t left = BLOCK;
            while (left) {
                ssize_t r = sendfile(s, f, &o, left);
                if (r <= 0) die("sendfile");
                left -= (size_t)r;
            }
        }
        if (mode == 2) {
            int zero = 0;
            setsockopt(s, IPPROTO_TCP, TCP_CORK, &zero, sizeof zero);
        }
    }
    shutdown(s, SHUT_WR);
    double reader_cpu = 0;
    if (read(report[0], &reader_cpu, sizeof reader_cpu) != sizeof reader_cpu) die("read report");
    waitpid(child, 0, 0);
    double elapsed = seconds() - t0;
    double gib = (double)size / (1 << 30);
    double server_cpu = cpu_seconds(RUSAGE_SELF) / gib;
    printf("mode %d: %.0f MB/s, CPU-s/GiB server %.3f + reader %.3f = %.3f\n", mode,
           (double)size / elapsed / 1e6, server_cpu, reader_cpu / gib, server_cpu + reader_cpu / gib);
    return 0;
}
