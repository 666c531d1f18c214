/*
 * loadgen.c -- single-threaded epoll load generator for the trio_socketserver
 * benchmarks.  Loopback only by intent (it will connect wherever --host says,
 * but the harness only ever passes 127.0.0.1 / ::1 / a unix socket path).
 *
 * Build:  gcc -O2 -o bench/build/loadgen bench/loadgen.c
 *
 * Usage:  loadgen MODE --host 127.0.0.1 --port N --duration SECS [options]
 *
 *   persistent --conns 50 --size 64
 *       Each connection: send SIZE bytes, wait for the full SIZE-byte echo,
 *       verify it, repeat.  One outstanding message per connection.
 *       ops = completed (verified) round trips.
 *   cpr --concurrency 16 --size 64
 *       Connect-per-request: keep CONCURRENCY connections in flight, each:
 *       connect, send SIZE bytes, read the SIZE-byte echo, close, reconnect.
 *       ops = completed (verified) requests.
 *   idle --conns 10000 --size 64 [--hold-file PATH] [--batch 128] [--retries 3]
 *        [--pace auto|off]
 *       Open CONNS connections, paced by the server's accept-queue length (see
 *       run_idle: at most min(batch, backlog/2) connections are "not yet
 *       accepted by the server" at any time), wait until the server has
 *       accepted all of them, hold them idle, optionally hand-shake with the
 *       harness through --hold-file, then do exactly one round trip on each
 *       and close all.  --pace off: only limit in-progress connects.
 *   udp --inflight 32 --size 64 [--udp-timeout-ms 200]
 *       INFLIGHT connected UDP sockets, one outstanding datagram each.  A reply
 *       triggers the next datagram; a datagram unanswered after the timeout is
 *       counted as a loss and re-sent (with a new sequence number, so a late
 *       reply is recognised as stale rather than double-counted).
 *       ops = verified replies.
 *
 * Common options:
 *   --host H        numeric IPv4/IPv6 address (127.0.0.1, ::1); default 127.0.0.1
 *   --port N        server port
 *   --unix PATH     AF_UNIX stream socket instead of TCP (persistent/cpr/idle)
 *   --duration S    measured time (persistent/cpr/udp); bound of each phase (idle)
 *   --warmup S      un-counted warm-up before measuring (default 1; not idle)
 *   --close rst|fin how TCP connections are closed (default rst, see below)
 *   --no-nodelay    do not set TCP_NODELAY on client sockets
 *
 * Output: exactly ONE line of JSON on stdout.  Diagnostics go to stderr; in
 * idle mode with --hold-file a line "HOLD <connected>" is written to stderr
 * (flushed) right after the hold file was created, so a harness can react to
 * an event instead of polling for the file.
 *
 * Error accounting: every failed connect, reset, premature EOF, short or
 * mismatching echo, send error is counted in "errors" (plus a breakdown), the
 * affected connection is replaced by a fresh one and the run keeps going.
 * Errors that happen during warm-up are reported separately as
 * "warmup_errors".
 *
 * ---------------------------------------------------------------------------
 * Why connections are closed with an RST (SO_LINGER {1,0}) by default:
 *
 * In cpr mode the client closes first (it closes as soon as it has the echo),
 * so every request leaves one socket in TIME_WAIT on the *client* side for 60 s
 * (Linux TCP_TIMEWAIT_LEN, not tunable).  The ephemeral range here is
 * 32768..60999 = 28232 ports per (src ip, dst ip, dst port).  At tens of
 * thousands of connections per second that range is used up in about a
 * second.  net.ipv4.tcp_tw_reuse=2 (the default: reuse for loopback only)
 * lets connect() recycle a TIME_WAIT port only once it is >1 s old, so above
 * ~28k conn/s connect() starts failing with EADDRNOTAVAIL, and well before
 * that the kernel's port search walks long TIME_WAIT chains, which makes
 * connect() expensive and would turn the load generator into the bottleneck.
 * Runs are also repeated back to back (rounds x contenders), so TIME_WAIT
 * from the previous run would still be around.
 *
 * Closing with SO_LINGER {on, 0} *after the complete echo has been read*
 * sends an RST instead of a FIN: no TIME_WAIT anywhere and no port pressure.
 * The request/response exchange itself is complete and verified before the
 * RST, so the only thing the server observes differently is that its next
 * receive fails with ECONNRESET instead of returning EOF -- every peer server
 * must (and real servers do) treat a reset like EOF.  That is what wrk-style
 * and many other load generators do.  `--close fin` gives the graceful
 * variant if one wants to measure the EOF path instead (fine for short runs
 * or low rates).
 * ---------------------------------------------------------------------------
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <fcntl.h>
#include <netdb.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAXEV 1024

/* ------------------------------------------------------------------ options */

static struct {
    const char *mode;
    const char *host;
    int port;
    const char *unix_path;
    double duration;
    double warmup;
    int conns;
    int concurrency;
    int inflight;
    int size;
    int batch;
    int retries;
    int close_rst;
    int nodelay;
    int pace;
    int udp_timeout_ms;
    const char *hold_file;
} opt = {
    .mode = NULL,
    .host = "127.0.0.1",
    .port = -1,
    .unix_path = NULL,
    .duration = 5.0,
    .warmup = 1.0,
    .conns = -1,
    .concurrency = 16,
    .inflight = 32,
    .size = 64,
    .batch = 128,
    .retries = 3,
    .close_rst = 1,
    .nodelay = 1,
    .pace = 1,
    .udp_timeout_ms = 200,
    .hold_file = NULL,
};

static struct sockaddr_storage g_addr;
static socklen_t g_addrlen;
static int g_family;

static void die(const char *fmt, const char *arg)
{
    fprintf(stderr, "loadgen: ");
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    exit(2);
}

static void usage(void)
{
    fprintf(stderr,
            "usage: loadgen persistent|cpr|idle|udp --host H --port N "
            "--duration S [--warmup S] [--conns N] [--concurrency N] "
            "[--inflight N] [--size N] [--unix PATH] [--hold-file PATH] "
            "[--batch N] [--retries N] [--pace auto|off] [--close rst|fin] "
            "[--no-nodelay] [--udp-timeout-ms N]\n");
    exit(2);
}

static void parse_args(int argc, char **argv)
{
    if (argc < 2)
        usage();
    opt.mode = argv[1];
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *v = (i + 1 < argc) ? argv[i + 1] : NULL;
#define TAKE(name) (strcmp(a, name) == 0 && (v ? 1 : (die("missing value for %s", name), 0)) && ++i)
        if (TAKE("--host")) opt.host = v;
        else if (TAKE("--port")) opt.port = atoi(v);
        else if (TAKE("--unix")) opt.unix_path = v;
        else if (TAKE("--duration")) opt.duration = atof(v);
        else if (TAKE("--warmup")) opt.warmup = atof(v);
        else if (TAKE("--conns")) opt.conns = atoi(v);
        else if (TAKE("--concurrency")) opt.concurrency = atoi(v);
        else if (TAKE("--inflight")) opt.inflight = atoi(v);
        else if (TAKE("--size")) opt.size = atoi(v);
        else if (TAKE("--batch")) opt.batch = atoi(v);
        else if (TAKE("--retries")) opt.retries = atoi(v);
        else if (TAKE("--hold-file")) opt.hold_file = v;
        else if (TAKE("--udp-timeout-ms")) opt.udp_timeout_ms = atoi(v);
        else if (TAKE("--close")) {
            if (strcmp(v, "rst") == 0) opt.close_rst = 1;
            else if (strcmp(v, "fin") == 0) opt.close_rst = 0;
            else die("--close must be rst or fin, got %s", v);
        }
        else if (strcmp(a, "--no-nodelay") == 0) opt.nodelay = 0;
        else if (TAKE("--pace")) {
            if (strcmp(v, "auto") == 0) opt.pace = 1;
            else if (strcmp(v, "off") == 0) opt.pace = 0;
            else die("--pace must be auto or off, got %s", v);
        }
        else die("unknown argument %s", a);
#undef TAKE
    }
    if (opt.size < 1 || opt.size > (1 << 24))
        die("bad --size%s", "");
    if (opt.duration <= 0)
        die("bad --duration%s", "");
    if (opt.warmup < 0)
        opt.warmup = 0;
    if (opt.batch < 1)
        opt.batch = 1;
    if (opt.retries < 0)
        opt.retries = 0;
}

static void resolve(void)
{
    memset(&g_addr, 0, sizeof g_addr);
    if (opt.unix_path) {
        struct sockaddr_un *su = (struct sockaddr_un *)&g_addr;
        if (strlen(opt.unix_path) >= sizeof su->sun_path)
            die("unix path too long: %s", opt.unix_path);
        su->sun_family = AF_UNIX;
        strcpy(su->sun_path, opt.unix_path);
        g_addrlen = sizeof *su;
        g_family = AF_UNIX;
        return;
    }
    if (opt.port <= 0 || opt.port > 65535)
        die("missing/bad --port%s", "");
    struct addrinfo hints = {0}, *res = NULL;
    char portbuf[16];
    snprintf(portbuf, sizeof portbuf, "%d", opt.port);
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV; /* never touch DNS */
    hints.ai_family = AF_UNSPEC;
    int rc = getaddrinfo(opt.host, portbuf, &hints, &res);
    if (rc != 0 || !res)
        die("cannot parse --host %s (numeric address required)", opt.host);
    memcpy(&g_addr, res->ai_addr, res->ai_addrlen);
    g_addrlen = res->ai_addrlen;
    g_family = res->ai_family;
    freeaddrinfo(res);
}

/* -------------------------------------------------------------- utilities */

static inline double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); /* vDSO, no syscall */
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static long nofile_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -1;
    return (long)rl.rlim_cur;
}

/* Payload: 8-byte sequence number, 4-byte connection id, then xorshift
 * noise derived from both.  Every message differs, so a stale, duplicated,
 * truncated or cross-connection echo is detected by memcmp. */
static void fill_payload(unsigned char *buf, int size, uint32_t id, uint64_t seq)
{
    uint64_t x = (seq + 1) * 0x9E3779B97F4A7C15ull ^ (((uint64_t)id << 32) | id);
    int i = 0;
    for (; i + 8 <= size; i += 8) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        memcpy(buf + i, &x, 8);
    }
    if (i < size) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        memcpy(buf + i, &x, (size_t)(size - i));
    }
    if (size >= 12) {
        memcpy(buf, &seq, 8);
        memcpy(buf + 8, &id, 4);
    }
}

/* ---------------------------------------------------------------- stats */

static struct {
    uint64_t ops;
    uint64_t errors;
    uint64_t connect_errors;
    uint64_t resets;      /* ECONNRESET / EPIPE / other socket errors */
    uint64_t eofs;        /* server closed before the full echo arrived */
    uint64_t mismatches;  /* echoed bytes differ from what was sent */
    uint64_t losses;      /* udp: timed-out datagrams */
    uint64_t stale;       /* udp: late replies to re-sent datagrams */
    uint64_t bytes;       /* payload bytes echoed back (verified) */
} st, warm_st;

static int g_counting;      /* 0 during warm-up */
static double g_t_measure;  /* start of measured window */

static void start_measuring(double t)
{
    warm_st = st;
    memset(&st, 0, sizeof st);
    g_counting = 1;
    g_t_measure = t;
}

/* ------------------------------------------------------- TCP connections */

enum { ST_FREE, ST_CONNECTING, ST_SENDING, ST_READING, ST_IDLE, ST_DONE };

typedef struct {
    int fd;
    int state;
    uint32_t id;
    int tries;         /* connect attempts used (idle mode) */
    uint32_t off;      /* bytes sent / received in the current phase */
    uint64_t seq;
    unsigned char *tx;
    unsigned char *rx;
} conn_t;

static int g_ep;

static void set_linger0(int fd)
{
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
}

/* Start a stream connection for c.  Returns 1 if already connected, 0 if
 * the connect is in progress (EPOLLOUT will tell), -1 on immediate failure
 * (errno set).  The fd is registered edge-triggered for IN|OUT|RDHUP once and
 * never modified: OUT fires once when the handshake completes, IN fires on
 * every arrival of data.  That avoids an epoll_ctl(MOD) per request. */
static int conn_open(conn_t *c)
{
    int fd, connected = 0;
    if (g_family == AF_UNIX) {
        /* A *blocking* connect on AF_UNIX waits in the kernel until the
         * listener's backlog has room -- a real readiness wait instead of an
         * EAGAIN retry loop.  Bounded by SO_SNDTIMEO.  All later I/O uses
         * MSG_DONTWAIT, so the fd can stay in blocking mode. */
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return -1;
        struct timeval tv = {2, 0};
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        if (connect(fd, (struct sockaddr *)&g_addr, g_addrlen) < 0) {
            int e = errno;
            close(fd);
            errno = e;
            return -1;
        }
        connected = 1;
    } else {
        fd = socket(g_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return -1;
        if (opt.close_rst)
            set_linger0(fd);
        if (opt.nodelay) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        }
        if (connect(fd, (struct sockaddr *)&g_addr, g_addrlen) == 0) {
            connected = 1;
        } else if (errno != EINPROGRESS) {
            int e = errno;
            close(fd);
            errno = e;
            return -1;
        }
    }
    struct epoll_event ev;
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.ptr = c;
    if (epoll_ctl(g_ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    c->fd = fd;
    c->off = 0;
    c->state = connected ? ST_SENDING : ST_CONNECTING;
    return connected;
}

static void conn_close(conn_t *c)
{
    if (c->fd >= 0)
        close(c->fd); /* also removes it from the epoll set */
    c->fd = -1;
    c->state = ST_FREE;
}

/* 1 = everything sent, 0 = would block, -1 = error */
static int conn_send(conn_t *c)
{
    while (c->off < (uint32_t)opt.size) {
        ssize_t n = send(c->fd, c->tx + c->off, (size_t)opt.size - c->off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            c->off += (uint32_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        return -1;
    }
    return 1;
}

/* 1 = full echo received, 0 = would block, -1 = error, -2 = EOF.  Never
 * reads past SIZE bytes: with one outstanding message there is nothing more
 * to read, so we do not spend an extra recv() just to observe EAGAIN (edge
 * triggering is still safe because the next IN edge comes with new data). */
static int conn_recv(conn_t *c)
{
    while (c->off < (uint32_t)opt.size) {
        ssize_t n = recv(c->fd, c->rx + c->off, (size_t)opt.size - c->off, MSG_DONTWAIT);
        if (n > 0) {
            c->off += (uint32_t)n;
            continue;
        }
        if (n == 0)
            return -2;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        return -1;
    }
    return 1;
}

static int sock_error(int fd)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        return errno;
    return err;
}

static void count_io_error(int r)
{
    st.errors++;
    if (r == -2)
        st.eofs++;
    else
        st.resets++;
}

static conn_t *alloc_conns(int n)
{
    conn_t *cs = calloc((size_t)n, sizeof *cs);
    unsigned char *bufs = malloc((size_t)n * 2 * (size_t)opt.size);
    if (!cs || !bufs)
        die("out of memory%s", "");
    for (int i = 0; i < n; i++) {
        cs[i].fd = -1;
        cs[i].id = (uint32_t)i;
        cs[i].tx = bufs + (size_t)i * 2 * opt.size;
        cs[i].rx = cs[i].tx + opt.size;
    }
    return cs;
}

/* Drive the request state machine of a connection after an event (or right
 * after it was opened).  Returns 1 if a full, verified echo was received
 * (caller decides what's next), 0 if waiting, -1 on failure (already
 * counted; caller must replace the connection). */
static int conn_step(conn_t *c, uint32_t events)
{
    int r;
    switch (c->state) {
    case ST_CONNECTING:
        if (events & (EPOLLERR | EPOLLHUP)) {
            int e = sock_error(c->fd);
            (void)e;
            st.errors++;
            st.connect_errors++;
            return -1;
        }
        if (!(events & EPOLLOUT))
            return 0;
        c->state = ST_SENDING;
        c->off = 0;
        /* fall through */
    case ST_SENDING:
        r = conn_send(c);
        if (r < 0) {
            count_io_error(-1);
            return -1;
        }
        if (r == 0)
            return 0;
        c->state = ST_READING;
        c->off = 0;
        /* The echo cannot be there yet (the server runs in another process
         * on another core): wait for the IN edge instead of a wasted recv. */
        return 0;
    case ST_READING:
        r = conn_recv(c);
        if (r == 0)
            return 0;
        if (r < 0) {
            count_io_error(r);
            return -1;
        }
        if (memcmp(c->rx, c->tx, (size_t)opt.size) != 0) {
            st.errors++;
            st.mismatches++;
            return -1;
        }
        st.bytes += (uint64_t)opt.size;
        c->state = ST_DONE;
        return 1;
    case ST_IDLE:
        /* idle connections should see no traffic; anything readable means
         * the server sent data or closed/reset the connection */
        if (events & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP))
            return -1;
        return 0;
    default:
        return 0;
    }
}

/* epoll_wait timeout (ms) until `until`, capped; never negative */
static int ms_until(double t, double until, int cap)
{
    double d = (until - t) * 1000.0;
    if (d <= 0)
        return 0;
    if (d > cap)
        return cap;
    return (int)d + 1;
}

/* -------------------------------------------------------------- results */

static void print_common(double seconds)
{
    printf("\"ops\": %llu, \"seconds\": %.6f, \"ops_per_sec\": %.2f, \"errors\": %llu, "
           "\"error_kinds\": {\"connect\": %llu, \"reset\": %llu, \"eof\": %llu, "
           "\"mismatch\": %llu}, \"warmup_errors\": %llu, \"size\": %d, \"family\": \"%s\"",
           (unsigned long long)st.ops, seconds,
           seconds > 0 ? (double)st.ops / seconds : 0.0,
           (unsigned long long)st.errors, (unsigned long long)st.connect_errors,
           (unsigned long long)st.resets, (unsigned long long)st.eofs,
           (unsigned long long)st.mismatches, (unsigned long long)warm_st.errors,
           opt.size,
           g_family == AF_UNIX ? "unix" : g_family == AF_INET6 ? "inet6" : "inet");
}

static void print_rusage(double wall)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double u = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6;
    double s = ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6;
    printf(", \"cpu_user\": %.3f, \"cpu_sys\": %.3f, \"cpu_pct\": %.1f, \"wall\": %.3f",
           u, s, wall > 0 ? 100.0 * (u + s) / wall : 0.0, wall);
}

/* ------------------------------------------------ persistent / cpr modes */

/* Both modes share one loop; they differ in what happens after a completed
 * request: persistent sends the next message on the same connection, cpr
 * closes and reconnects.  A failed connection is always replaced. */
static int run_stream(int cpr)
{
    int n = cpr ? opt.concurrency : (opt.conns > 0 ? opt.conns : 50);
    if (n < 1)
        die("need at least one connection%s", "");
    conn_t *cs = alloc_conns(n);
    /* Slots that need a (re)connect.  They are (re)opened at the top of the
     * loop rather than from inside the event handler, so an immediately
     * failing connect() cannot recurse.  Two lists are swapped each pass:
     * `todo` is being worked on, `pending` collects new entries. */
    int *pending = malloc(sizeof(int) * (size_t)n);
    int *todo = malloc(sizeof(int) * (size_t)n);
    char *is_pending = calloc((size_t)n, 1);
    int npending = 0;
    for (int i = 0; i < n; i++) {
        pending[npending++] = i;
        is_pending[i] = 1;
    }
    struct epoll_event evs[MAXEV];
    double t_start = now();
    double t_warm_end = t_start + opt.warmup;
    double t_end = t_warm_end + opt.duration;
    if (opt.warmup <= 0)
        start_measuring(t_start);
    double t = t_start;

#define REPLACE(c)                                  \
    do {                                            \
        conn_close(c);                              \
        if (!is_pending[(c)->id]) {                 \
            is_pending[(c)->id] = 1;                \
            pending[npending++] = (int)(c)->id;     \
        }                                           \
    } while (0)

    for (;;) {
        int backoff = 0;
        int *tmp = todo;
        todo = pending;
        pending = tmp;
        int ntodo = npending;
        npending = 0;
        for (int k = 0; k < ntodo; k++) {
            conn_t *c = &cs[todo[k]];
            c->seq++;
            fill_payload(c->tx, opt.size, c->id, c->seq);
            int r = conn_open(c);
            if (r < 0) {
                st.errors++;
                st.connect_errors++;
                pending[npending++] = (int)c->id; /* still pending: retry */
                backoff = 1;
                continue;
            }
            is_pending[c->id] = 0;
            if (r == 1 && conn_step(c, EPOLLOUT) < 0)
                REPLACE(c);
        }

        double until = g_counting ? t_end : t_warm_end;
        /* back off 1 ms if connect() itself fails (server gone, ports
         * exhausted) so a dead server doesn't make us spin */
        int timeout = backoff ? 1 : ms_until(t, until, 100);
        int ne = epoll_wait(g_ep, evs, MAXEV, timeout);
        if (ne < 0 && errno != EINTR) {
            perror("epoll_wait");
            break;
        }
        t = now();
        for (int k = 0; k < ne; k++) {
            conn_t *c = evs[k].data.ptr;
            if (c->state == ST_FREE)
                continue;
            int r = conn_step(c, evs[k].events);
            if (r < 0) {
                REPLACE(c);
            } else if (r == 1) {
                st.ops++;
                if (cpr) {
                    REPLACE(c); /* close (RST by default) and reconnect */
                } else {
                    c->seq++;
                    fill_payload(c->tx, opt.size, c->id, c->seq);
                    c->state = ST_SENDING;
                    c->off = 0;
                    if (conn_step(c, EPOLLOUT) < 0)
                        REPLACE(c);
                }
            }
        }
        if (!g_counting && t >= t_warm_end)
            start_measuring(t);
        if (g_counting && t >= t_end)
            break;
    }
#undef REPLACE
    double seconds = t - g_t_measure;
    for (int i = 0; i < n; i++)
        conn_close(&cs[i]);
    printf("{\"mode\": \"%s\", ", cpr ? "cpr" : "persistent");
    print_common(seconds);
    if (cpr)
        printf(", \"concurrency\": %d", n);
    else
        printf(", \"conns\": %d", n);
    printf(", \"warmup\": %.3f, \"close\": \"%s\"", opt.warmup, opt.close_rst ? "rst" : "fin");
    print_rusage(now() - t_start);
    printf("}\n");
    return 0;
}

/* ---------------------------------------------- listener accept queue */

/* The length of the server's accept queue, read from the kernel with a
 * sock_diag (inet_diag) netlink dump of LISTEN sockets on the target port --
 * the same data `ss -ltn` shows as Recv-Q / Send-Q.  Used by idle mode to pace
 * connects; see run_idle().  Works only because client and server share the
 * host's network namespace, which is always true on loopback. */
static int g_diag = -1;

static int diag_open(void)
{
    g_diag = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    return g_diag < 0 ? -1 : 0;
}

/* Returns the accept queue length (max over matching listeners) and stores
 * the listener's backlog limit in *maxq; -1 if no listener was found. */
static int listen_queue(int *maxq)
{
    struct {
        struct nlmsghdr nlh;
        struct inet_diag_req_v2 r;
    } req;
    memset(&req, 0, sizeof req);
    req.nlh.nlmsg_len = sizeof req;
    req.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    req.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    req.r.sdiag_family = (uint8_t)g_family;
    req.r.sdiag_protocol = IPPROTO_TCP;
    req.r.idiag_states = 1u << 10; /* TCP_LISTEN */
    req.r.id.idiag_sport = htons((uint16_t)opt.port); /* honoured for listeners */
    if (send(g_diag, &req, sizeof req, 0) < 0)
        return -1;
    int found = -1;
    char buf[16384] __attribute__((aligned(8)));
    for (;;) {
        ssize_t len = recv(g_diag, buf, sizeof buf, 0);
        if (len <= 0)
            return -1;
        for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)len);
             h = NLMSG_NEXT(h, len)) {
            if (h->nlmsg_type == NLMSG_DONE)
                return found;
            if (h->nlmsg_type == NLMSG_ERROR)
                return -1;
            struct inet_diag_msg *m = NLMSG_DATA(h);
            if (ntohs(m->id.idiag_sport) != opt.port)
                continue;
            if ((int)m->idiag_rqueue > found)
                found = (int)m->idiag_rqueue;
            *maxq = (int)m->idiag_wqueue;
        }
    }
}

static void pause_us(long us)
{
    struct timespec ts = {0, us * 1000};
    nanosleep(&ts, NULL);
}

/* -------------------------------------------------------------- idle mode */

static int run_idle(void)
{
    int n = opt.conns > 0 ? opt.conns : 10000;
    long lim = nofile_limit();
    if (lim > 0 && n + 16 > lim) {
        fprintf(stderr, "loadgen: RLIMIT_NOFILE %ld too small for %d conns\n", lim, n);
        return 2;
    }
    conn_t *cs = alloc_conns(n);
    struct epoll_event evs[MAXEV];
    double t0 = now();
    double deadline = t0 + opt.duration;
    int next = 0, inflight = 0, connected = 0, failed = 0, dropped = 0;
    uint64_t retries_used = 0;
    double t = t0;

    /* Phase 1: connect.
     *
     * Why pacing is needed: on loopback the whole three-way handshake runs
     * inside connect() (softirq on the client's core), so a connection is
     * "established" -- and sitting in the server's accept queue -- long
     * before the server process gets to accept() it.  Limiting the number of
     * in-progress connects therefore does NOT limit the accept queue: the
     * client can queue connections ~10x faster than a Python server accepts
     * them.  Once the queue (backlog 128 .. somaxconn) is full, the kernel
     * drops further SYNs; the client retransmits only after 1 s, 3 s, 7 s...
     * and retransmitted SYNs keep losing the race against fresh connects.
     * Measured with backlog 128: only ~200 conn/s, 10000 conns impossible.
     *
     * So we pace on the real signal: the listener's accept-queue length from
     * sock_diag.  New connects are started only while
     *     queued-but-not-accepted + in-progress  <  cap,
     *     cap = min(--batch, backlog/2)
     * i.e. in batches that always fit the backlog.  When there is no room we
     * re-query after 100 us: the kernel has no event for "the server called
     * accept()", so this is the one place that polls (bounded by --duration;
     * it runs on the load generator's own core).  Without sock_diag (AF_UNIX
     * uses blocking connects, which wait for backlog room in the kernel; or
     * if the listener is not visible) only the in-progress window applies.
     * Connects that fail outright are retried up to --retries times. */
    int use_diag = 0, qmax = 0, cap = opt.batch;
    uint64_t diag_queries = 0, throttle_waits = 0;
    if (opt.pace && g_family != AF_UNIX && diag_open() == 0) {
        if (listen_queue(&qmax) >= 0 && qmax > 0) {
            use_diag = 1;
            if (qmax / 2 < cap)
                cap = qmax / 2 > 0 ? qmax / 2 : 1;
        } else {
            fprintf(stderr, "loadgen: idle: listener not visible via sock_diag; "
                            "pacing by in-progress window only\n");
        }
    }
    for (;;) {
        if (connected + failed >= n)
            break;
        t = now();
        if (t >= deadline)
            break;
        int throttled = 0;
        if (next < n && inflight < cap) {
            int room = cap - inflight;
            if (use_diag) {
                int q = listen_queue(&qmax);
                diag_queries++;
                if (q > 0)
                    room -= q;
            }
            if (room <= 0)
                throttled = 1;
            while (room > 0 && next < n) {
                conn_t *c = &cs[next];
                c->seq = 1;
                fill_payload(c->tx, opt.size, c->id, c->seq);
                c->tries++;
                int r = conn_open(c);
                if (r < 0) {
                    if (c->tries <= opt.retries) {
                        retries_used++;
                        throttled = 1; /* try again after a short pause */
                        break;
                    }
                    st.errors++;
                    st.connect_errors++;
                    failed++;
                    next++;
                    continue;
                }
                next++;
                room--;
                if (r == 1) {
                    c->state = ST_IDLE;
                    connected++;
                } else {
                    inflight++;
                }
            }
        }
        int timeout = (throttled || inflight == 0) ? 0 : ms_until(t, deadline, 100);
        int ne = epoll_wait(g_ep, evs, MAXEV, timeout);
        if (ne < 0 && errno != EINTR) {
            perror("epoll_wait");
            break;
        }
        for (int k = 0; k < ne; k++) {
            conn_t *c = evs[k].data.ptr;
            uint32_t e = evs[k].events;
            if (c->state == ST_CONNECTING) {
                if (e & (EPOLLERR | EPOLLHUP)) {
                    inflight--;
                    conn_close(c);
                    if (c->tries <= opt.retries) {
                        retries_used++;
                        c->tries++;
                        if (conn_open(c) >= 0) {
                            if (c->state == ST_SENDING) {
                                c->state = ST_IDLE;
                                connected++;
                            } else {
                                inflight++;
                            }
                            continue;
                        }
                    }
                    st.errors++;
                    st.connect_errors++;
                    failed++;
                } else if (e & EPOLLOUT) {
                    inflight--;
                    c->state = ST_IDLE;
                    connected++;
                    /* the same edge may already carry the server's close */
                    if (conn_step(c, e) < 0) {
                        dropped++;
                        conn_close(c);
                        connected--;
                        failed++;
                        st.errors++;
                        st.resets++;
                    }
                }
            } else if (c->state == ST_IDLE) {
                if (conn_step(c, e) < 0) {
                    dropped++;
                    conn_close(c);
                    connected--;
                    failed++;
                    st.errors++;
                    st.resets++;
                }
            }
        }
        if (throttled && ne == 0) {
            throttle_waits++;
            pause_us(100);
        }
    }
    /* Let the server drain its accept queue, so that "connected" (and the
     * HOLD notification) means the server process holds every connection. */
    double accept_wait = 0;
    if (use_diag) {
        double ta = now();
        int q;
        while ((q = listen_queue(&qmax)) > 0 && now() < deadline) {
            diag_queries++;
            pause_us(100);
        }
        accept_wait = now() - ta;
    }
    double t_connected = now();
    double connect_seconds = t_connected - t0;
    /* whatever is still connecting at the deadline counts as failed */
    for (int i = 0; i < n; i++)
        if (cs[i].state == ST_CONNECTING) {
            conn_close(&cs[i]);
            failed++;
            st.errors++;
            st.connect_errors++;
        }
    failed += n - next; /* never started (deadline) */
    int connected_at_hold = connected;
    fprintf(stderr, "loadgen: idle: %d/%d connected in %.3f s (%llu retries)\n",
            connected, n, connect_seconds, (unsigned long long)retries_used);

    /* Phase 2: hold.  Tell the harness, then wait until it deletes the hold
     * file (checked every 50 ms, bounded by --duration).  The 50 ms wait is
     * an epoll_wait, so a server that drops idle connections is noticed. */
    double hold_seconds = 0;
    int hold_timeout = 0;
    if (opt.hold_file) {
        FILE *f = fopen(opt.hold_file, "w");
        if (!f) {
            perror("hold file");
        } else {
            fputs("connected\n", f);
            fclose(f);
            fprintf(stderr, "HOLD %d\n", connected);
            fflush(stderr);
            double th = now();
            double hold_deadline = th + opt.duration;
            while (access(opt.hold_file, F_OK) == 0) {
                t = now();
                if (t >= hold_deadline) {
                    hold_timeout = 1;
                    unlink(opt.hold_file);
                    break;
                }
                int ne = epoll_wait(g_ep, evs, MAXEV, 50);
                for (int k = 0; k < ne; k++) {
                    conn_t *c = evs[k].data.ptr;
                    if (c->state == ST_IDLE && conn_step(c, evs[k].events) < 0) {
                        dropped++;
                        conn_close(c);
                        connected--;
                        failed++;
                        st.errors++;
                        st.resets++;
                    }
                }
            }
            hold_seconds = now() - th;
        }
    }

    /* Phase 3: exactly one round trip on every open connection. */
    double tr = now();
    double rt_deadline = tr + opt.duration;
    int outstanding = 0, succeeded = 0;
    for (int i = 0; i < n; i++) {
        conn_t *c = &cs[i];
        if (c->state != ST_IDLE)
            continue;
        c->state = ST_SENDING;
        c->off = 0;
        if (conn_step(c, EPOLLOUT) < 0) {
            conn_close(c);
            failed++;
        } else {
            outstanding++;
        }
    }
    while (outstanding > 0) {
        t = now();
        if (t >= rt_deadline)
            break;
        int ne = epoll_wait(g_ep, evs, MAXEV, ms_until(t, rt_deadline, 100));
        if (ne < 0 && errno != EINTR)
            break;
        for (int k = 0; k < ne; k++) {
            conn_t *c = evs[k].data.ptr;
            if (c->state != ST_SENDING && c->state != ST_READING)
                continue;
            int r = conn_step(c, evs[k].events);
            if (r == 1) {
                succeeded++;
                outstanding--;
            } else if (r < 0) {
                conn_close(c);
                failed++;
                outstanding--;
            }
        }
    }
    double rt_seconds = now() - tr;
    if (outstanding > 0) {
        failed += outstanding;
        st.errors += (uint64_t)outstanding;
    }
    st.ops = (uint64_t)succeeded;
    /* Phase 4: close all (RST by default -- see the top comment). */
    for (int i = 0; i < n; i++)
        conn_close(&cs[i]);

    printf("{\"mode\": \"idle\", ");
    print_common(rt_seconds);
    printf(", \"conns\": %d, \"connected\": %d, \"succeeded\": %d, \"failed\": %d, "
           "\"dropped_while_idle\": %d, \"connect_seconds\": %.3f, \"connect_retries\": %llu, "
           "\"hold_seconds\": %.3f, \"hold_timeout\": %s, \"batch\": %d, \"close\": \"%s\", "
           "\"paced_by_accept_queue\": %s, \"listen_backlog\": %d, \"connect_cap\": %d, "
           "\"accept_wait_seconds\": %.3f, \"diag_queries\": %llu, \"throttle_waits\": %llu",
           n, connected_at_hold, succeeded, failed, dropped, connect_seconds,
           (unsigned long long)retries_used, hold_seconds, hold_timeout ? "true" : "false",
           opt.batch, opt.close_rst ? "rst" : "fin", use_diag ? "true" : "false", qmax, cap,
           accept_wait, (unsigned long long)diag_queries, (unsigned long long)throttle_waits);
    print_rusage(now() - t0);
    printf("}\n");
    return 0;
}

/* --------------------------------------------------------------- udp mode */

typedef struct {
    int fd;
    uint64_t seq;
    double sent_at;
    unsigned char *tx;
} udp_slot_t;

static int udp_send(udp_slot_t *s, uint32_t id, double t)
{
    s->seq++;
    fill_payload(s->tx, opt.size, id, s->seq);
    s->sent_at = t;
    ssize_t n = send(s->fd, s->tx, (size_t)opt.size, MSG_DONTWAIT | MSG_NOSIGNAL);
    /* a failed send (EAGAIN, ECONNREFUSED from an earlier ICMP) is simply
     * treated like a lost datagram: the timeout re-sends it */
    if (n != opt.size) {
        st.errors++;
        st.resets++;
        return -1;
    }
    return 0;
}

static int run_udp(void)
{
    if (opt.unix_path)
        die("udp mode does not support --unix%s", "");
    if (opt.size < 12)
        die("udp mode needs --size >= 12 (sequence header)%s", "");
    int n = opt.inflight;
    if (n < 1)
        die("need --inflight >= 1%s", "");
    /* One connected socket per in-flight datagram: the kernel filters
     * replies by peer address, a reply is matched by slot (epoll data) and
     * checked against the sequence number in its header. */
    udp_slot_t *ss = calloc((size_t)n, sizeof *ss);
    unsigned char *bufs = malloc((size_t)n * (size_t)opt.size);
    unsigned char *rx = malloc((size_t)opt.size + 1);
    if (!ss || !bufs || !rx)
        die("out of memory%s", "");
    for (int i = 0; i < n; i++) {
        ss[i].tx = bufs + (size_t)i * opt.size;
        int fd = socket(g_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&g_addr, g_addrlen) < 0) {
            perror("udp socket/connect");
            return 2;
        }
        ss[i].fd = fd;
        struct epoll_event ev;
        ev.events = EPOLLIN; /* level-triggered: one recv per event, no
                                extra recv() just to see EAGAIN */
        ev.data.u32 = (uint32_t)i;
        epoll_ctl(g_ep, EPOLL_CTL_ADD, fd, &ev);
    }
    double timeout = opt.udp_timeout_ms / 1000.0;
    double t_start = now();
    double t_warm_end = t_start + opt.warmup;
    double t_end = t_warm_end + opt.duration;
    if (opt.warmup <= 0)
        start_measuring(t_start);
    double t = t_start;
    for (int i = 0; i < n; i++)
        udp_send(&ss[i], (uint32_t)i, t);
    /* timeouts are scanned at most every timeout/4, so the earliest
     * re-send happens within [timeout, 1.25*timeout] */
    double next_scan = t + timeout / 4;
    struct epoll_event evs[MAXEV];
    for (;;) {
        double until = g_counting ? t_end : t_warm_end;
        if (next_scan < until)
            until = next_scan;
        int ne = epoll_wait(g_ep, evs, MAXEV, ms_until(t, until, 100));
        if (ne < 0 && errno != EINTR) {
            perror("epoll_wait");
            break;
        }
        t = now();
        for (int k = 0; k < ne; k++) {
            uint32_t i = evs[k].data.u32;
            udp_slot_t *s = &ss[i];
            ssize_t r = recv(s->fd, rx, (size_t)opt.size + 1, MSG_DONTWAIT);
            if (r < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                    continue;
                st.errors++; /* e.g. ECONNREFUSED: port unreachable */
                st.resets++;
                continue;   /* the timeout re-sends */
            }
            uint64_t seq = 0;
            uint32_t id = 0;
            if (r >= 12) {
                memcpy(&seq, rx, 8);
                memcpy(&id, rx + 8, 4);
            }
            if (r == opt.size && id == i && seq == s->seq) {
                if (memcmp(rx, s->tx, (size_t)opt.size) == 0) {
                    st.ops++;
                    st.bytes += (uint64_t)opt.size;
                } else {
                    st.errors++;
                    st.mismatches++;
                }
                udp_send(s, i, t);
            } else if (r == opt.size && id == i && seq < s->seq) {
                st.stale++; /* late reply to a datagram we already re-sent */
            } else {
                st.errors++;
                st.mismatches++;
            }
        }
        if (t >= next_scan) {
            for (int i = 0; i < n; i++)
                if (t - ss[i].sent_at >= timeout) {
                    st.losses++;
                    udp_send(&ss[i], (uint32_t)i, t);
                }
            next_scan = t + timeout / 4;
        }
        if (!g_counting && t >= t_warm_end)
            start_measuring(t);
        if (g_counting && t >= t_end)
            break;
    }
    double seconds = t - g_t_measure;
    for (int i = 0; i < n; i++)
        close(ss[i].fd);
    printf("{\"mode\": \"udp\", ");
    print_common(seconds);
    printf(", \"inflight\": %d, \"losses\": %llu, \"stale\": %llu, \"timeout_ms\": %d, "
           "\"warmup\": %.3f",
           n, (unsigned long long)st.losses, (unsigned long long)st.stale,
           opt.udp_timeout_ms, opt.warmup);
    print_rusage(now() - t_start);
    printf("}\n");
    return 0;
}

/* ------------------------------------------------------------------- main */

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    signal(SIGPIPE, SIG_IGN); /* belt and braces; sends use MSG_NOSIGNAL */
    raise_nofile();
    resolve();
    g_ep = epoll_create1(EPOLL_CLOEXEC);
    if (g_ep < 0) {
        perror("epoll_create1");
        return 2;
    }
    int rc;
    if (strcmp(opt.mode, "persistent") == 0)
        rc = run_stream(0);
    else if (strcmp(opt.mode, "cpr") == 0)
        rc = run_stream(1);
    else if (strcmp(opt.mode, "idle") == 0)
        rc = run_idle();
    else if (strcmp(opt.mode, "udp") == 0)
        rc = run_udp();
    else
        usage();
    fflush(stdout);
    return rc;
}
